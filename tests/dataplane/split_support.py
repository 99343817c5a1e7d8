"""A graph split over workers inside one process: each worker a `GraphService` over a `SplitKV`
of its own engine, its peers the other workers' endpoints called directly."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from memorygraph.codec.framing import unframe
from memorygraph.codec.nodes import decode_node
from memorygraph.events.hub import EventHub
from memorygraph.graph.query import (
    Page,
    QueryFilter,
    RecordPage,
    decode_token,
    encode_token,
    page_size,
    sessions_fingerprint,
)
from memorygraph.graph.scatter import Part, merge_pages
from memorygraph.graph.service import GraphService
from memorygraph.model import NodeKind, SessionState
from memorygraph.servicers.moving import MapKeeper, ShardMover
from memorygraph.servicers.peers import GrpcPeer, PeerServicer
from memorygraph.store import GraphStore, KeyValueStore, MemoryStore
from memorygraph.store.counters import GraphCounts
from memorygraph.store.moves import sync_shard
from memorygraph.store.placement import Placement, read_placement, write_placement
from memorygraph.store.shards import Shards
from memorygraph.store.split import SplitKV, WorkerMap
from memorygraph.v1 import workers_pb2_grpc as wgrpc


class DirectPeer:
    """Worker `index` of `workers`, called in the process; `failing` makes `apply` fail, as
    a worker that is down would."""

    def __init__(self, workers: SplitGraph, index: int) -> None:
        self.workers, self.index = workers, index
        self.failing = False

    def _endpoint(self):  # type: ignore[no-untyped-def]
        return self.workers.services[self.index].endpoint

    def get(self, cf: str, key: bytes) -> bytes | None:
        return self._endpoint().get(cf, key)

    def multi_get(self, cf: str, keys: Sequence[bytes]) -> list[bytes | None]:
        return self._endpoint().multi_get(cf, keys)

    def scan_chunk(
        self, cf: str, start: bytes, end: bytes, reverse: bool, limit: int, values: bool
    ) -> list[tuple[bytes, bytes]]:
        return self._endpoint().scan_chunk(cf, start, end, reverse, limit, values)

    def lock(self, origin: int, lease_seconds: float | None = None) -> None:
        self._endpoint().lock(origin)  # no lease: nothing here dies holding it

    def unlock(self) -> None:
        self._endpoint().unlock()

    def apply(self, origin: int, sequence: int, part: bytes, *, locked: bool) -> None:
        if self.failing:
            raise ConnectionError(f"worker {self.index} is down")
        self._endpoint().apply(origin, sequence, part, locked=locked)

    def reassign(self) -> None:
        self.workers.keeper(self.index).reload()

    def shard_events(
        self, shard: int, start: bytes, end: bytes, limit: int
    ) -> tuple[list[tuple[bytes, bytes]], bytes]:
        return self._endpoint().shard_events(shard, start, end, limit)

    def drop(self, shard: int) -> None:
        self._endpoint().drop(shard)


class FailingPeer:
    """A `GrpcPeer` whose `apply` fails while `failing` is set, as a worker that is down."""

    def __init__(self, peer: GrpcPeer, index: int) -> None:
        self.peer, self.index = peer, index
        self.failing = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.peer, name)

    def apply(self, origin: int, sequence: int, part: bytes, *, locked: bool) -> None:
        if self.failing:
            raise ConnectionError(f"worker {self.index} is down")
        self.peer.apply(origin, sequence, part, locked=locked)


@dataclass
class SplitGraph:
    """`count` workers over `shards` shards (shard s on worker s mod count), reaching each
    other directly or (`transport="grpc"`) through `WorkerPeer` servers on 127.0.0.1."""

    count: int = 2
    shards: int = 8
    clock: Callable[[], int] | None = None
    transport: str = "direct"
    engines: list[KeyValueStore] = field(default_factory=list)
    services: list[GraphService] = field(default_factory=list)
    peers: list[dict[int, Any]] = field(default_factory=list)
    _servers: list[grpc.Server] = field(default_factory=list)
    _servicers: list[PeerServicer] = field(default_factory=list)
    _ports: list[int] = field(default_factory=list)
    # Which worker owns each shard (the data directory's map): shard s on worker s mod count
    # until `move` changes it; the epoch counts the changes.
    owners: list[int] = field(default_factory=list)
    epoch: int = 1
    _hubs: dict[int, EventHub] = field(default_factory=dict)
    _data_dir: Path = Path()

    def __post_init__(self) -> None:
        if not self.owners:
            self.owners = [shard % self.count for shard in range(self.shards)]
        if not self.engines:
            self.engines = [MemoryStore() for _ in range(self.count)]
        if self.transport == "grpc":
            for _ in range(self.count):
                server = grpc.server(ThreadPoolExecutor(max_workers=8))
                self._ports.append(server.add_insecure_port("127.0.0.1:0"))
                self._servers.append(server)
        for index in range(self.count):
            self.services.append(self.open(index))
        for server, service in zip(self._servers, self.services, strict=False):
            servicer = PeerServicer(service.endpoint)
            wgrpc.add_WorkerPeerServicer_to_server(servicer, server)
            self._servicers.append(servicer)
            server.start()

    def _peer(self, index: int, other: int) -> Any:
        if self.transport == "direct":
            return DirectPeer(self, other)
        channel = grpc.insecure_channel(f"127.0.0.1:{self._ports[other]}")
        return FailingPeer(GrpcPeer(channel, index, other), other)

    def open(self, index: int) -> GraphService:
        """Worker `index` over its engine (again, after a restart)."""
        peers = {other: self._peer(index, other) for other in range(self.count) if other != index}
        if index < len(self.peers):
            self.peers[index] = peers
        else:
            self.peers.append(peers)
        split = SplitKV(self.engines[index], WorkerMap(self.owners, index), peers)
        store = GraphStore(split, shards=self.shards)
        return GraphService(store) if self.clock is None else GraphService(store, clock=self.clock)

    def move(self, shard: int, to: int, *, crash_after: str | None = None) -> None:
        """Move `shard` to worker `to` in the steps a worker takes (`store.moves`): copy,
        deliver every outbox, copy again (nothing writes meanwhile here: as fenced), count it
        in there, hand it over at the next epoch, count it out and drop it at the source.
        `crash_after` names a step after which every worker restarts and the move is run
        again from its start (every step must then finish the work once)."""
        source, epoch = self.owners[shard], self.epoch + 1
        shards = self._shards()

        def copy() -> None:
            if self.owners[shard] == source:  # not once handed over
                sync_shard(self.engines[source], self.engines[to], shard, shards)

        def fence() -> None:
            for service in self.services:
                assert service.store.deliver_outbox()
            copy()

        def hand_over() -> None:
            if self.owners[shard] == source:
                self.owners[shard], self.epoch = to, epoch
                for service in self.services:
                    service.store.reassign(self.owners)

        steps: list[tuple[str, Callable[[], Any]]] = [
            ("copied", copy),
            ("fenced", fence),
            ("adopted", lambda: self.owners[shard] == source and self._adopt(to, shard, epoch)),
            ("handed over", hand_over),
            ("released", lambda: self.services[source].store.release_shard(shard, epoch)),
        ]
        for name, step in steps:
            step()
            if name == crash_after:
                for index in range(self.count):
                    self.restart(index)
                for _, again in steps:
                    again()
                return

    def move_online(self, shard: int, to: int, data_dir: Path) -> None:
        """Move `shard` to worker `to` the way a serving worker does (`servicers.moving`),
        the map in `data_dir`: copies, a fence over every worker, the hand-over, the drop."""
        # The map as the other kind of move (`move`) left it.
        write_placement(
            data_dir, Placement(self.shards, self.count, self.epoch, tuple(self.owners))
        )
        self._data_dir = data_dir
        worker = self.services[to]
        mover = ShardMover(
            to,
            data_dir,
            worker.store,
            worker.endpoint,
            self._hub(to),
            self.peers[to],
            self.keeper(to),
        )
        mover.move(shard)
        placement = read_placement(data_dir)
        self.owners, self.epoch = list(placement.owners), placement.epoch

    def keeper(self, index: int) -> MapKeeper:
        """Worker `index`'s view of the map in the data directory of `move_online`."""
        store = self.services[index].store
        return MapKeeper(
            lambda: read_placement(self._data_dir),
            store,
            lambda owners, epoch: None,
            self.epoch,
            self._hub(index),
        )

    def _hub(self, index: int) -> EventHub:
        hub = self._hubs.get(index)
        if hub is None or hub.store is not self.services[index].store:
            if hub is not None:
                hub.close()
            hub = self._hubs[index] = EventHub(self.services[index].store)
        return hub

    def _adopt(self, to: int, shard: int, epoch: int) -> bool:
        return self.services[to].store.adopt_shard(shard, epoch)

    def _shards(self) -> Shards:
        return self.services[0].store.shards

    def restart(self, index: int) -> GraphService:
        self.services[index] = self.open(index)
        if self._servicers:
            self._servicers[index].endpoint = self.services[index].endpoint
        return self.services[index]

    def close(self) -> None:
        for server in self._servers:
            server.stop(None)
        for hub in self._hubs.values():
            hub.close()

    def owner(self, node_id: bytes) -> GraphService:
        """The worker that owns the shard `node_id` routes to."""
        return self.services[self.index_of(node_id)]

    def index_of(self, node_id: bytes) -> int:
        return self.owners[self.services[0].store.shards.of_id(node_id)]


class UnionView:
    """Every worker's engine read as one (for checks over the whole graph's keys)."""

    def __init__(self, engines: Sequence[KeyValueStore]) -> None:
        self.engines = list(engines)

    def get(self, cf: str, key: bytes) -> bytes | None:
        for engine in self.engines:
            if (value := engine.get(cf, key)) is not None:
                return value
        return None

    def multi_get(self, cf: str, keys: Sequence[bytes]) -> list[bytes | None]:
        return [self.get(cf, key) for key in keys]

    def scan(
        self, cf: str, start: bytes, end: bytes, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        pairs = [pair for e in self.engines for pair in e.scan(cf, start, end, reverse=reverse)]
        return iter(sorted(pairs, reverse=reverse))

    def scan_keys(
        self, cf: str, start: bytes, end: bytes, *, reverse: bool = False
    ) -> Iterator[bytes]:
        return (key for key, _ in self.scan(cf, start, end, reverse=reverse))


def _position(record: bytes) -> tuple[int, bytes]:
    node = decode_node(None, record)
    return node.create_time, node.id


class SplitService:
    """What a client of the graph sees, answered by the workers of a `SplitGraph`: each write
    and point read goes to the next worker in turn (whatever shards it touches: the workers
    reach each other's shards), and a listing over every shard is each worker's page of its
    own, merged (`graph.scatter`)."""

    def __init__(self, graph: SplitGraph) -> None:
        self.graph = graph
        self._turn = 0
        self.templates = _SplitTemplates(self)

    def next(self) -> GraphService:
        self._turn += 1
        return self.graph.services[self._turn % self.graph.count]

    def __getattr__(self, name: str) -> Any:
        if name in _ANY_WORKER:
            return getattr(self.next(), name)
        raise AttributeError(name)

    def counts(self) -> GraphCounts:
        total = GraphCounts()
        for service in self.graph.services:
            counts = service.counts()
            total = GraphCounts(
                {k: total.nodes[k] + counts.nodes[k] for k in NodeKind},
                total.edges + counts.edges,
                total.active_sessions + counts.active_sessions,
                total.tokens + counts.tokens,
            )
        return total

    def list_sessions(
        self, *, limit: int, page_token: str, state: SessionState | None, user_id: str
    ) -> Page:
        fingerprint = sessions_fingerprint(state, user_id)
        parts = []
        for service in self.graph.services:
            page = service.list_sessions(
                limit=limit, page_token=page_token, state=state, user_id=user_id
            )
            stop = decode_token(page.next_page_token, fingerprint)
            parts.append(Part([((n.create_time, n.id), n) for n in page.nodes], stop))
        nodes, last = merge_pages(parts, page_size(limit), descending=True)
        return Page(nodes, encode_token(fingerprint, last) if last is not None else "")

    def query(self, query: QueryFilter, *, limit: int, page_token: str) -> RecordPage:
        if query.session_id is not None:
            return self.next().query(query, limit=limit, page_token=page_token)
        fingerprint = query.fingerprint()
        parts = []
        for service in self.graph.services:
            page = service.query(query, limit=limit, page_token=page_token)
            stop = decode_token(page.next_page_token, fingerprint)
            parts.append(Part([(_position(unframe(e)), e) for e in page.entries], stop))
        entries, last = merge_pages(parts, page_size(limit), descending=query.descending)
        return RecordPage(entries, encode_token(fingerprint, last) if last is not None else "")

    def stream_query(
        self, query: QueryFilter, *, batch_size: int, limit: int
    ) -> Iterator[list[bytes]]:
        if query.session_id is not None:
            return self.next().stream_query(query, batch_size=batch_size, limit=limit)
        every = [
            (_position(unframe(entry)), entry)
            for service in self.graph.services
            for batch in service.stream_query(query, batch_size=batch_size, limit=limit)
            for entry in batch
        ]
        every.sort(key=lambda pair: pair[0], reverse=query.descending)
        entries = [entry for _, entry in every][: limit or None]
        return iter([entries[i : i + batch_size] for i in range(0, len(entries), batch_size)])


_ANY_WORKER = {
    "create_session",
    "close_session",
    "delete_session",
    "create_node",
    "create_nodes",
    "update_node",
    "delete_node",
    "get_node",
    "get_nodes",
    "create_edge",
    "delete_edge",
    "get_edges",
    "traverse",
}


class _SplitTemplates:
    def __init__(self, service: SplitService) -> None:
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service.next().templates, name)
