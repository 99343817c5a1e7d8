"""Where the workers of one graph are and how they reach each other.

Two shapes, one interface for `server`:

- `LocalWorkers`: the workers of one data directory on one machine (`memorygraph serve
  --workers N`). The placement is the directory's `workers.json`, each worker's engine is in
  `worker-<i>/`; workers call each other over abstract Unix sockets named after the directory
  (trusted for arriving there, presenting the first client key when auth is on), unary calls
  over a relay socket, and worker i also listens for clients on port + 1 + i.
- `PodMembers`: the members of a graph served by several pods (`cluster:` settings). The
  placement is the operator's shard map (`store.cluster`), the engine is the pod's data
  directory, and members call each other on their peer ports over TCP, presenting the peer
  key (and, with `cluster.peer_tls`, certificates both ways); the peer port takes no other
  key. What a member serves is its view of the shards: the map, with the hand-overs of moves
  between members recorded in its volume since (`store.cluster.ShardView`).
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc

from memorygraph.auth import KeyRing, OwnKey
from memorygraph.config import ServerConfig, TLSConfig, cluster_member
from memorygraph.errors import ConfigError
from memorygraph.servicers.front import Front
from memorygraph.servicers.peers import GrpcPeer
from memorygraph.servicers.relay import RelayClient
from memorygraph.store import GraphStore
from memorygraph.store.cluster import (
    ClusterMap,
    ShardView,
    claim,
    read_cluster_map,
    read_intent,
    record_shard,
    recorded_shards,
)
from memorygraph.store.kv import KeyValueStore
from memorygraph.store.moves import holds
from memorygraph.store.placement import Placement, load_placement
from memorygraph.store.shards import Shards
from memorygraph.store.split import SplitKV
from memorygraph.tls import server_credentials

__all__ = [
    "LocalWorkers",
    "PodMembers",
    "Topology",
    "internal_address",
    "topology_of",
    "worker_address",
]

log = logging.getLogger("memorygraph.server")

Metadata = Callable[[], Sequence[tuple[str, str]]]

# How long a member's writers' lock lasts when the member holding it dies amid a write that
# reached it (that member's writes wait so long): short, as nothing restarts a pod at once.
# A move's fence takes its locks under a lease of its own (`servicers.moving`).
POD_LEASE_SECONDS = 3.0


def worker_address(config: ServerConfig, worker: int) -> str:
    """Where worker `worker` of this data directory listens on its own, for clients."""
    host = config.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostbyname(socket.gethostname())
    return f"{host}:{config.port + 1 + worker}"


def _socket_name(config: ServerConfig) -> str:
    """What the workers' sockets are named after: the data directory (the workers of one
    directory run on one machine)."""
    name = hashlib.blake2b(str(config.data_dir.resolve()).encode(), digest_size=8).hexdigest()
    return f"memorygraph-{name}"


def internal_address(config: ServerConfig, worker: int) -> str:
    """Where the other workers reach worker `worker` over gRPC: an abstract Unix socket,
    without TLS."""
    return f"unix-abstract:{_socket_name(config)}-{worker}"


def relay_name(config: ServerConfig, worker: int) -> str:
    """The abstract Unix socket of worker `worker`'s relay (`servicers.relay`)."""
    return f"{_socket_name(config)}-relay-{worker}"


def _internal_options(config: ServerConfig) -> list[tuple[str, int]]:
    """Channels between workers: any message size the server takes, and a worker that was
    down is reached again within a second of its return (gRPC's default waits up to two
    minutes between attempts), also at a new address: a pod back after a restart has a new IP
    under its name, which gRPC would otherwise look up again only after 30 seconds."""
    return [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
        ("grpc.dns_min_time_between_resolutions_ms", 1000),
    ]


class Topology(ABC):
    """What `server` needs to know about the other workers of this one (`me`)."""

    me: int
    placement: Placement  # the placement this worker starts with
    moves: bool  # whether MoveShard moves shards here (a shared data directory)
    # Whether a call to a worker that is down waits for it (within its deadline): workers of
    # one machine are started again within a second, a pod may take minutes.
    waits_for_restart: bool

    def __init__(self, config: ServerConfig) -> None:
        self.config = config

    @abstractmethod
    def engine_dir(self) -> Path: ...

    def opened(self, engine: KeyValueStore) -> None:
        """This worker's engine is open, before anything is served from it (the workers of
        one machine have nothing to check)."""
        return None

    def attach(self, front: Front, store: GraphStore) -> None:
        """This worker's routes and store, once made (workers of one machine never join or
        leave a running graph: nothing to keep)."""
        return None

    @abstractmethod
    def read_placement(self) -> Placement:
        """The placement as it is now (taken again when another worker says it changed)."""

    @abstractmethod
    def peer_channel(self, worker: int) -> grpc.Channel: ...

    @abstractmethod
    def peer_metadata(self) -> Sequence[tuple[str, str]]:
        """What this worker presents when it calls another."""

    def peer(self, channel: grpc.Channel, worker: int) -> GrpcPeer:
        """Worker `worker` as this one's store reaches it, over `channel`."""
        return GrpcPeer(channel, self.me, worker, metadata=self.peer_metadata)

    def forward_credentials(self) -> Metadata | None:
        """What a forwarded call presents instead of its caller's credentials (None: the
        caller's own)."""
        return None

    @abstractmethod
    def client_addresses(self) -> dict[int, str]: ...

    def relays(self) -> dict[int, RelayClient]:
        return {}

    def relay_name(self) -> str | None:
        return None

    def own_port(self) -> int | None:
        """A client port of this worker's own besides the shared one (None: none)."""
        return None

    def metrics_port(self) -> int:
        return self.config.metrics_port

    def peer_keyring(self, keyring: KeyRing | None) -> KeyRing | None:
        """The keys the internal address takes (`keyring`: the client port's)."""
        return keyring

    @abstractmethod
    def bind_internal(self, server: grpc.Server) -> None: ...

    @abstractmethod
    def describe(self) -> str: ...


class LocalWorkers(Topology):
    """Worker `worker` of a data directory served by several workers on this machine."""

    moves = True
    waits_for_restart = True

    def __init__(self, config: ServerConfig, worker: int) -> None:
        super().__init__(config)
        self.me = worker
        self.placement = self.read_placement()
        self._own_key = OwnKey(config.auth.api_keys_file if config.auth.enabled else None)

    def engine_dir(self) -> Path:
        return self.placement.engine_dir(self.config.data_dir, self.me)

    def read_placement(self) -> Placement:
        config = self.config
        return load_placement(config.data_dir, shards=config.shards, workers=config.worker_count)

    def peer_channel(self, worker: int) -> grpc.Channel:
        options = _internal_options(self.config)
        return grpc.insecure_channel(internal_address(self.config, worker), options=options)

    def peer_metadata(self) -> Sequence[tuple[str, str]]:
        return self._own_key.metadata() if self.config.auth.enabled else ()

    def client_addresses(self) -> dict[int, str]:
        return {w: worker_address(self.config, w) for w in range(self.placement.workers)}

    def relays(self) -> dict[int, RelayClient]:
        size = self.config.max_message_bytes
        return {
            w: RelayClient(relay_name(self.config, w), size)
            for w in range(self.placement.workers)
            if w != self.me
        }

    def relay_name(self) -> str | None:
        return relay_name(self.config, self.me)

    def own_port(self) -> int | None:
        return self.config.port + 1 + self.me

    def metrics_port(self) -> int:
        port = self.config.metrics_port
        return port + 1 + self.me if port else 0

    def bind_internal(self, server: grpc.Server) -> None:
        address = internal_address(self.config, self.me)
        try:
            server.add_insecure_port(address)
        except RuntimeError as exc:
            raise ConfigError(f"worker {self.me} is running already ({address} is taken)") from exc

    def describe(self) -> str:
        return f"worker {self.me} of {self.placement.workers}"


class PodMembers(Topology):
    """This pod as one member of a graph served by several pods (see the module)."""

    moves = False
    waits_for_restart = False

    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config)
        cluster = config.cluster
        assert cluster.map_file is not None and cluster.peer_key_file is not None
        self.map_file = cluster.map_file
        self.shard_map = read_cluster_map(cluster.map_file)
        self.me = cluster_member(config)
        self.view = ShardView.of(self.shard_map, {})  # with the volume's records once open
        self.placement = self._placement()
        self._records = threading.Lock()  # the view changes under it
        self._said: str | None = None  # why the map in the file was not taken, once said
        self._probers: dict[int, GrpcPeer] = {}
        if config.shards is not None and config.shards != self.shard_map.shards:
            raise ConfigError(
                f"the shard map has {self.shard_map.shards} shards and the settings ask for "
                f"{config.shards}: leave shards out of a member's settings"
            )
        # What the peer port takes (an empty file refused before anything is opened), and
        # what this member presents: the same file.
        self._keyring = KeyRing(cluster.peer_key_file, what="peer key")
        self._key = OwnKey(cluster.peer_key_file, environment=False)
        self._engine: KeyValueStore | None = None
        self._front: Front | None = None
        self._store: GraphStore | None = None
        self._channel_credentials: grpc.ChannelCredentials | None = None
        if cluster.peer_tls is not None:
            tls = cluster.peer_tls
            try:
                self._channel_credentials = grpc.ssl_channel_credentials(
                    root_certificates=tls.ca_file.read_bytes(),
                    private_key=tls.key_file.read_bytes(),
                    certificate_chain=tls.cert_file.read_bytes(),
                )
            except OSError as exc:
                raise ConfigError(
                    f"cannot read peer TLS file {exc.filename}: {exc.strerror}"
                ) from None

    def engine_dir(self) -> Path:
        return self.config.data_dir

    def opened(self, engine: KeyValueStore) -> None:
        claim(engine, self.shard_map, self.me)
        self._engine = engine
        recorded = recorded_shards(engine)
        self.view = ShardView.of(self.shard_map, recorded)
        self._refuse_taken_away(engine, recorded)
        self.placement = self._placement()

    def _refuse_taken_away(
        self, engine: KeyValueStore, recorded: dict[int, tuple[int, int]]
    ) -> None:
        """Refuse (ConfigError) a map that gives another member a shard whose data this
        volume holds without having handed it over (nor taking it in a move under way)."""
        intent = read_intent(engine)
        shards = Shards(self.shard_map.shards)
        for shard, owner in enumerate(self.view.owners):
            handed = shard in recorded and recorded[shard][0] != self.me
            if owner == self.me or handed or (intent is not None and intent.shard == shard):
                continue
            if holds(engine, shard, shards):
                raise ConfigError(
                    f"the shard map gives shard {shard} to member {owner}, but this volume "
                    "holds it and never handed it over: a map alone does not move a shard's "
                    "data"
                )

    def _placement(self) -> Placement:
        """The view as a placement of shards over workers (a member is one worker)."""
        shard_map, view = self.shard_map, self.view
        return Placement(
            shard_map.shards,
            len(shard_map.members),
            view.version(shard_map.epoch),
            view.owners,
            view.epochs,
        )

    @property
    def member_count(self) -> int:
        return len(self.shard_map.members)

    @property
    def map_epoch(self) -> int:
        return self.shard_map.epoch

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    def record(self, shard: int, owner: int, epoch: int) -> bool:
        """Record in the volume that `shard` is member `owner`'s from shard epoch `epoch` on,
        and in the view (the routes follow with the next `read_placement`); False when the
        view has that epoch or a later one already."""
        assert self._engine is not None
        with self._records:
            view = self.view
            if epoch <= view.epochs[shard]:
                return False
            record_shard(self._engine, shard, owner, epoch)
            owners, epochs = list(view.owners), list(view.epochs)
            owners[shard], epochs[shard] = owner, epoch
            self.view = ShardView(tuple(owners), tuple(epochs))
            return True

    def prober(self, worker: int) -> GrpcPeer:
        """Member `worker` over a channel of its own, for questions that may find it down
        (a failed attempt there does not hold back the calls passed on to it)."""
        if worker not in self._probers:
            channel = self.peer_channel(worker, isolated=True)
            self._probers[worker] = self.peer(channel, worker)
        return self._probers[worker]

    def attach(self, front: Front, store: GraphStore) -> None:
        """Members that join or leave later are taken into `front` and `store`'s view."""
        self._front, self._store = front, store

    def read_placement(self) -> Placement:
        """The view as it is now: the map once it has a newer epoch (recorded in the volume
        first, and its new members joined), with the hand-overs recorded since. A map this
        member cannot take is not taken, and said once (until another problem, or a map it
        takes): the hand-overs recorded are taken whatever the map."""
        try:
            found = read_cluster_map(self.map_file)
            if found.epoch > self.shard_map.epoch:
                self._check_successor(found)
                if self._engine is not None:
                    claim(self._engine, found, self.me)  # recorded before it is taken
                before, self.shard_map = self.shard_map, found
                if found.members != before.members:
                    self._take_members(len(before.members))
                self._said = None
        except ConfigError as exc:
            if self._said != str(exc):
                log.error("not taking the shard map (serving by the one taken before): %s", exc)
                self._said = str(exc)
        with self._records:
            if self._engine is not None:
                self.view = ShardView.of(self.shard_map, recorded_shards(self._engine))
            self.placement = self._placement()
            return self.placement

    def _check_successor(self, found: ClusterMap) -> None:
        """Refuse (ConfigError) a newer map this member cannot take while it serves."""
        current = self.shard_map
        if found.graph != current.graph:
            raise ConfigError(f"the shard map now names graph {found.graph}, not {current.graph}")
        if found.shards != current.shards:
            raise ConfigError(
                f"the shard map now has {found.shards} shards, not {current.shards}: a graph's "
                "number of shards never changes"
            )
        kept = min(len(found.members), len(current.members))
        if found.members[:kept] != current.members[:kept]:
            raise ConfigError(
                "the shard map gives members this one knows other addresses; a member's "
                "addresses are taken when it starts"
            )
        view = self.view
        for shard, (owner, held_by) in enumerate(zip(found.owners, view.owners, strict=True)):
            epoch, held_since = found.shard_epoch(shard), view.epochs[shard]
            if owner == held_by or epoch < held_since:
                continue  # the same owner, or a map that has not caught up with a move yet
            if epoch == held_since or self.me in (owner, held_by):
                raise ConfigError(
                    f"the shard map gives shard {shard} to member {owner} at shard epoch "
                    f"{epoch}, but member {held_by} holds it since epoch {held_since}: a map "
                    "alone does not move a shard's data"
                )

    def _take_members(self, known: int) -> None:
        """Reach the members the map names now, of which this one knew the first `known`:
        channels and peers for those that joined; those that left (they own no shard) are no
        longer asked, unless parts of writes are still to be delivered to them."""
        if self._front is None or self._store is None:
            return
        split = self._store.kv
        assert isinstance(split, SplitKV)
        count = len(self.shard_map.members)
        channels = {w: c for w, c in self._front.channels.items() if w < count}
        gone = [c for w, c in self._front.channels.items() if w >= count]
        peers = {w: p for w, p in split.peers.items() if w < count or self._store.undelivered(w)}
        for worker in range(known, count):
            channels[worker] = self.peer_channel(worker)
            if worker != self.me:
                peers[worker] = self.peer(self.peer_channel(worker), worker)
        split.peers = peers
        self._front.set_members(channels, self.client_addresses())
        for channel in gone:  # calls under way on it end; none are routed to it any more
            channel.close()
        log.info("the graph has %d members now (it had %d)", count, known)

    def peer_channel(self, worker: int, *, isolated: bool = False) -> grpc.Channel:
        target = self.shard_map.members[worker].peer
        options = _internal_options(self.config)
        if isolated:  # connections of its own, not shared with the other channels
            options.append(("grpc.use_local_subchannel_pool", 1))
        if self._channel_credentials is None:
            return grpc.insecure_channel(target, options=options)
        return grpc.secure_channel(target, self._channel_credentials, options=options)

    def peer_metadata(self) -> Sequence[tuple[str, str]]:
        return self._key.metadata()

    def forward_credentials(self) -> Metadata | None:
        return self._key.metadata

    def peer(self, channel: grpc.Channel, worker: int) -> GrpcPeer:
        return GrpcPeer(
            channel,
            self.me,
            worker,
            metadata=self.peer_metadata,
            lease_seconds=POD_LEASE_SECONDS,
        )

    def client_addresses(self) -> dict[int, str]:
        return {i: member.address for i, member in enumerate(self.shard_map.members)}

    def peer_keyring(self, keyring: KeyRing | None) -> KeyRing | None:
        return self._keyring

    def bind_internal(self, server: grpc.Server) -> None:
        config = self.config
        address = f"{config.host}:{config.cluster.peer_port}"
        tls = config.cluster.peer_tls
        try:
            if tls is None:
                server.add_insecure_port(address)
                return
            credentials = server_credentials(
                TLSConfig(
                    cert_file=tls.cert_file, key_file=tls.key_file, client_ca_file=tls.ca_file
                )
            )
            assert credentials is not None
            server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen on {address}: the port is in use or invalid") from exc

    def describe(self) -> str:
        return f"member {self.me} of {len(self.shard_map.members)} of graph {self.shard_map.graph}"


def topology_of(config: ServerConfig, worker: int | None) -> Topology | None:
    """How this server's graph is spread (None: this one process serves all of it)."""
    if config.cluster.map_file is not None:
        return PodMembers(config)
    if worker is not None:
        return LocalWorkers(config, worker)
    return None
