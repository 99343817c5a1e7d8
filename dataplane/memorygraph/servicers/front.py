"""How a worker answers calls for the whole graph when the shards are spread over workers.

Every worker answers every RPC on the shared port and on its own address:

- a call about one session, node or template name goes to the worker that owns its shard
  (forwarded in one hop, the request and the answer passed on as they are: a unary call over
  the owner's relay socket, `servicers.relay`, a stream over gRPC), so that it runs where its
  data, its event log and its subscribers are; a call that arrives already forwarded,
  or names no shard (a new session, a new agent, Ingest, BatchGetNodes), runs here;
- a listing over every shard (ListSessions, Query and StreamQuery without a session,
  ListArchiveCandidates) asks every worker for a page of its own shards and merges them
  (`graph.scatter`), so that order and page tokens are those of a single store;
- GetMetrics and Health add up or combine every worker's answer; GetShardMap says which worker
  owns which shard.

Calls between workers carry `x-memorygraph-worker` (the caller's index) and the caller's
credentials; such a call is answered here for this worker's shards only.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from typing import Any

import grpc
from google.protobuf.message import Message

from memorygraph import deadline
from memorygraph.codec import enums
from memorygraph.codec.routes import ROUTES, Key, place_new, shard_of
from memorygraph.codec.times import request_micros
from memorygraph.errors import (
    Code,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    RequestError,
    Unavailable,
    WrongOwner,
)
from memorygraph.errors import ResourceExhausted as ResourceExhaustedError
from memorygraph.graph.hooks import Read
from memorygraph.graph.limits import FRAMING
from memorygraph.graph.query import (
    DEFAULT_BATCH_SIZE,
    archive_fingerprint,
    decode_token,
    encode_token,
    page_size,
    sessions_fingerprint,
)
from memorygraph.graph.scatter import Part, merge_pages
from memorygraph.metrics import definitions as metrics
from memorygraph.model import parse_id
from memorygraph.servicers.handlers import REQUEST_ID_KEY
from memorygraph.servicers.relay import RelayClient, answered_error, relayed_error
from memorygraph.v1 import graph_pb2 as pb

__all__ = ["FROM_WORKER", "SCATTER_THREADS", "Front", "FrontServicer"]

log = logging.getLogger("memorygraph.server")

FROM_WORKER = "x-memorygraph-worker"
SERVICE = "memorygraph.v1.MemoryGraphService"
_PASSED_ON = ("authorization", "x-api-key", "x-request-id")
SCATTER_THREADS = 16
_MERGE_BUFFER = 1024  # events of every worker waiting to be merged
_HEALTH_SECONDS = 1.0
_HEADER_BYTES = 1 << 20  # an export's header line is read to route a restore, this much at most
_STREAMING = frozenset({"SubscribeToSession", "ExportSession", "StreamQuery", "StreamEvents"})


def _passed_on(error: grpc.RpcError) -> RequestError:
    """The error another worker answered with, to answer the caller with. An answer of that
    worker's own (it carries its request id) goes on as it is; a call that never reached it
    is UNAVAILABLE (the channel's own text names internal addresses)."""
    if not isinstance(error, grpc.Call):
        return Unavailable("another worker of this graph did not answer; try again")
    code, details = error.code(), error.details() or ""
    answered = any(key == REQUEST_ID_KEY for key, _ in error.trailing_metadata() or ())
    if not answered and code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded("the deadline passed before another worker answered")
    if not answered and code is grpc.StatusCode.UNAVAILABLE:
        return Unavailable("another worker of this graph is not reachable; try again")
    if not answered and code is grpc.StatusCode.UNAUTHENTICATED:
        # The caller's credentials were taken here: the other worker refused this one's (a
        # peer key being rotated, or not the same on every pod).
        log.error("another worker of this graph refused this worker's credentials: %s", details)
        return Unavailable("another worker of this graph refused this one; try again")
    return answered_error(code, details)


class Front:
    """This worker's routes to the others: who owns which shard, and their channels."""

    def __init__(
        self,
        me: int,
        owners: list[int],
        epoch: int,
        channels: dict[int, grpc.Channel],
        addresses: dict[int, str],
        max_bytes: int,
        relays: dict[int, RelayClient] | None = None,
        *,
        credentials: Callable[[], Sequence[tuple[str, str]]] | None = None,
        wait_for_ready: bool = True,
        strict: bool = False,
    ) -> None:
        """`max_bytes`: what the records of a merged page may take (see `graph.query`).
        `relays`: the other workers' relay sockets, for unary calls (else gRPC only).
        `credentials()`: what a call passed on presents instead of its caller's credentials
        (the peer key of pods; None: the caller's own, as the workers of one machine do).
        `wait_for_ready`: a call to a worker that is down waits for it within its deadline
        (workers of one machine are started again within a second), else it fails at once
        with UNAVAILABLE (a pod may take minutes to come back).
        `strict`: a call passed on here about a shard this worker does not own answers
        UNAVAILABLE instead of running here (pod members: the two ends of a hand-over that
        one of them has not heard of yet pass the shard's calls to each other)."""
        self.me = me
        self.relays = relays or {}
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.strict = strict
        self.max_bytes = max_bytes
        self.owners = owners
        self.epoch = epoch
        self.channels = channels
        self.addresses = addresses
        self.pool = futures.ThreadPoolExecutor(SCATTER_THREADS, thread_name_prefix="scatter")
        self._callables: dict[tuple[int, str], Any] = {}

    def owner(self, key: Key) -> int | None:
        """The worker of `key`'s shard (None: not a valid key, left to the local answer)."""
        shard = shard_of(key, len(self.owners))
        return None if shard is None else self.owners[shard]

    @staticmethod
    def forwarded(context: grpc.ServicerContext) -> bool:
        return any(key == FROM_WORKER for key, _ in context.invocation_metadata() or ())

    def refuse_stray(self, route: Callable[[Any], Key | None], request: Any) -> None:
        """Unavailable for a call passed on here about a shard this worker does not own,
        when `strict` (`route(request)`: the call's key, None for no shard in particular;
        read only then)."""
        if not self.strict:
            return
        key = route(request)
        shard = None if key is None else shard_of(key, len(self.owners))
        if shard is not None and self.owners[shard] != self.me:
            raise Unavailable(f"shard {shard} is being handed over between members; try again")

    def destination(self, method: str, key: Key, context: grpc.ServicerContext) -> int | None:
        """The worker a call about `key` goes on to (None: it runs here). A call whose client
        routed it with the shard map (it names the map's epoch) is not passed on: it gets a
        redirect to the owner (`WrongOwner`), and the client sends it there itself."""
        shard = shard_of(key, len(self.owners))
        if shard is None or self.owners[shard] == self.me:
            return None
        owner = self.owners[shard]
        if any(k == WrongOwner.EPOCH_KEY for k, _ in context.invocation_metadata() or ()):
            metrics.REDIRECTED_CALLS.labels(method).inc()
            raise WrongOwner(
                f"shard {shard} is on worker {owner} at {self.addresses[owner]} (shard map "
                f"epoch {self.epoch}): send the call there, or to the graph's address",
                shard=shard,
                owner=self.addresses[owner],
                epoch=self.epoch,
            )
        metrics.FORWARDED_CALLS.labels(method).inc()
        return owner

    def metadata(self, context: grpc.ServicerContext) -> tuple[tuple[str, str | bytes], ...]:
        if self.credentials is None:
            passed = tuple(
                (k, v) for k, v in context.invocation_metadata() or () if k in _PASSED_ON
            )
            return (*passed, (FROM_WORKER, str(self.me)))
        own = tuple(self.credentials())
        ids = tuple((k, v) for k, v in context.invocation_metadata() or () if k == REQUEST_ID_KEY)
        return (*own, *ids, (FROM_WORKER, str(self.me)))

    def _callable(self, worker: int, method: str, kind: str) -> Any:
        """`method` of `worker`, passing the request and the answer on as bytes (made once
        per worker and method: a forward runs on every call that goes elsewhere)."""
        key = (worker, method)
        found = self._callables.get(key)
        if found is None:
            found = getattr(self.channels[worker], kind)(
                f"/{SERVICE}/{method}",
                request_serializer=_serialize,
                response_deserializer=_as_is,
            )
            self._callables[key] = found
        return found

    def call(
        self,
        worker: int,
        method: str,
        request: Message,
        context: grpc.ServicerContext,
        timeout: float | None = None,
    ) -> bytes:
        """`method` answered by `worker` (its answer as it was sent) within `timeout` seconds
        (default: what the current call has left)."""
        timeout = deadline.remaining() if timeout is None else timeout
        relay = self.relays.get(worker)
        if relay is not None:
            started = time.monotonic()
            relayed = relay.call(
                f"/{SERVICE}/{method}",
                request.SerializeToString(),
                self.metadata(context),
                timeout,
            )
            if relayed is not None:
                if relayed.code:
                    raise relayed_error(relayed)
                return relayed.response
            if timeout is not None:  # what finding the relay took is not given again
                timeout = max(timeout - (time.monotonic() - started), 0.0)
        callable_ = self._callable(worker, method, "unary_unary")
        try:
            answer: bytes = callable_(
                request,
                timeout=timeout,
                metadata=self.metadata(context),
                wait_for_ready=self.wait_for_ready,
            )
        except grpc.RpcError as error:
            raise _passed_on(error) from None
        return answer

    def stream(
        self, worker: int, method: str, request: Message, context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        call = self._callable(worker, method, "unary_stream")(
            request,
            timeout=deadline.remaining(),
            metadata=self.metadata(context),
            wait_for_ready=self.wait_for_ready,
        )

        def cancel() -> None:
            call.cancel()

        context.add_callback(cancel)
        try:
            yield from call
        except grpc.RpcError as error:
            raise _passed_on(error) from None

    def others(self) -> list[int]:
        """The other workers a call over every shard asks: those owning a shard (a worker
        owning none, as a pod that just joined, has nothing to add, and may not be up yet)."""
        owning = set(self.owners)
        return [worker for worker in self.channels if worker != self.me and worker in owning]

    def set_members(self, channels: dict[int, grpc.Channel], addresses: dict[int, str]) -> None:
        """The graph's workers from now on (a pod joined or left): new dicts, so that calls
        under way go on with the ones they started with."""
        self._callables = {k: c for k, c in self._callables.items() if k[0] in channels}
        self.channels, self.addresses = channels, addresses

    def reassign(self, owners: list[int], epoch: int) -> None:
        """Route by this map from now on (a shard moved)."""
        self.owners, self.epoch = list(owners), epoch


class FrontServicer:
    """`inner` (this worker's servicer) with calls routed over the workers (see the module)."""

    def __init__(
        self,
        inner: Any,
        front: Front,
        query_filter: Callable[[Any], Any],
        *,
        trusted: bool,
        mover: Any = None,
    ) -> None:
        """`query_filter(message)`: the graph's query filter of a request's QueryFilter.
        `trusted`: served on the internal address, where a call marked as coming from a
        worker is one (on the client ports the mark is ignored)."""
        self._inner = inner
        self._front: Any = front if trusted else _Untrusting(front)
        self._query_filter = query_filter
        self._mover = mover  # `servicers.moving.ShardMover`: moves shards onto this worker

    def __getattr__(self, method: str) -> Any:
        behaviour = getattr(self._inner, method)
        route = ROUTES.get(method)
        if route is None:
            return behaviour
        front = self._front
        scatter = getattr(self, f"_scatter_{method}", None)

        def where(request: Any, context: grpc.ServicerContext) -> int | None:
            """The worker to run on: None here, -1 every worker (a listing)."""
            if front.forwarded(context):
                front.refuse_stray(route, request)
                return None
            place_new(method, request)
            key = route(request)
            if key is None:
                return -1 if scatter is not None else None
            owner: int | None = front.destination(method, key, context)
            return owner

        if method in _STREAMING:

            def routed_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                worker = where(request, context)
                if worker is None:
                    yield from behaviour(request, context)
                elif worker < 0:
                    assert scatter is not None
                    yield from scatter(request, context)
                else:
                    yield from front.stream(worker, method, request, context)

            return routed_stream

        def routed(request: Any, context: grpc.ServicerContext) -> Any:
            worker = where(request, context)
            if worker is None:
                return behaviour(request, context)
            if worker < 0:
                assert scatter is not None
                return scatter(request, context)
            return front.call(worker, method, request, context)

        return routed

    # -- listings over every shard ---------------------------------------------------------------

    def _gather(
        self,
        method: str,
        request: Message,
        context: grpc.ServicerContext,
        local: Any,
        timeout: float | None = None,
    ) -> list[bytes]:
        """`method` answered by every worker (this one's `local` answer first), serialized,
        within `timeout` seconds (default: what the call has left)."""
        front = self._front
        timeout = deadline.remaining() if timeout is None else timeout
        calls = [
            front.pool.submit(front.call, worker, method, request, context, timeout)
            for worker in front.others()
        ]
        answers = [local if isinstance(local, bytes) else local.SerializeToString()]
        answers += [call.result() for call in calls]
        return answers

    def ListSessions(self, request: pb.ListSessionsRequest, context: grpc.ServicerContext) -> Any:
        local = self._inner.ListSessions(request, context)
        if self._front.forwarded(context):
            return local
        fingerprint = sessions_fingerprint(enums.session_state(request.state), request.user_id)
        pages = [
            pb.ListSessionsResponse.FromString(raw)
            for raw in self._gather("ListSessions", request, context, local)
        ]
        parts = [
            Part(
                [((s.create_time.ToMicroseconds(), parse_id(s.id, "id")), s) for s in p.sessions],
                decode_token(p.next_page_token, fingerprint),
            )
            for p in pages
        ]
        sessions, last = self._merge(parts, request.limit, descending=True)
        return pb.ListSessionsResponse(sessions=sessions, next_page_token=_token(fingerprint, last))

    def _scatter_Query(self, request: pb.QueryRequest, context: grpc.ServicerContext) -> Any:
        fingerprint = self._query_filter(request.filter).fingerprint()
        local = self._inner.Query(request, context)
        pages = [
            pb.QueryResponse.FromString(raw)
            for raw in self._gather("Query", request, context, local)
        ]
        parts = [
            Part(
                [((n.create_time.ToMicroseconds(), parse_id(n.id, "id")), n) for n in p.nodes],
                decode_token(p.next_page_token, fingerprint),
            )
            for p in pages
        ]
        nodes, last = self._merge(parts, request.limit, descending=request.filter.descending)
        return pb.QueryResponse(nodes=nodes, next_page_token=_token(fingerprint, last))

    def _scatter_StreamQuery(
        self, request: pb.StreamQueryRequest, context: grpc.ServicerContext
    ) -> Iterator[Any]:
        front = self._front
        streams = [
            _nodes(self._inner.StreamQuery(request, context)),
            *(_nodes(front.stream(w, "StreamQuery", request, context)) for w in front.others()),
        ]
        size = page_size(request.batch_size, default=DEFAULT_BATCH_SIZE, field="batch_size")
        if request.limit < 0:
            raise InvalidArgument(f"limit must not be negative (got {request.limit})")
        descending = request.filter.descending
        merged = heapq.merge(*streams, key=lambda pair: pair[0], reverse=descending)
        nodes = (node for _, node in itertools.islice(merged, request.limit or None))
        batch: list[pb.Node] = []
        used = 0
        for node in nodes:  # batches of `size` nodes, within the byte budget (one at least)
            cost = node.ByteSize() + FRAMING
            if batch and (len(batch) == size or used + cost > front.max_bytes):
                yield pb.QueryBatch(nodes=batch)
                batch, used = [], 0
            batch.append(node)
            used += cost
        if batch:
            yield pb.QueryBatch(nodes=batch)

    def ListArchiveCandidates(
        self, request: pb.ListArchiveCandidatesRequest, context: grpc.ServicerContext
    ) -> Any:
        local = self._inner.ListArchiveCandidates(request, context)
        if self._front.forwarded(context):
            return local
        fingerprint = archive_fingerprint(request_micros(request.idle_before, 0))
        pages = [
            pb.ListArchiveCandidatesResponse.FromString(raw)
            for raw in self._gather("ListArchiveCandidates", request, context, local)
        ]
        parts = [
            Part(
                [
                    (
                        (c.session.create_time.ToMicroseconds(), parse_id(c.session.id, "id")),
                        c,
                    )
                    for c in p.candidates
                ],
                decode_token(p.next_page_token, fingerprint),
            )
            for p in pages
        ]
        candidates, last = self._merge(parts, request.limit, descending=False)
        return pb.ListArchiveCandidatesResponse(
            candidates=candidates, next_page_token=_token(fingerprint, last)
        )

    def _merge(self, parts: list[Part[Any]], limit: int, *, descending: bool) -> Any:
        return merge_pages(
            parts,
            page_size(limit),
            descending=descending,
            size=lambda message: message.ByteSize(),
            max_bytes=self._front.max_bytes,
        )

    # -- restores --------------------------------------------------------------------------------

    def RestoreSession(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        """To the worker of the session the export holds (its header, the first line, names
        it): the session's history goes back into that worker's log."""
        front = self._front
        head: list[Any] = []
        seen = b""
        for chunk in requests:
            head.append(chunk)
            seen += chunk.data
            if b"\n" in seen or len(seen) > _HEADER_BYTES:
                break
        chunks = itertools.chain(head, requests)
        owner = None if front.forwarded(context) else _export_owner(front, seen)
        if owner is None or owner == front.me:
            return self._inner.RestoreSession(chunks, context)
        metrics.FORWARDED_CALLS.labels("RestoreSession").inc()
        callable_: Any = front.channels[owner].stream_unary(
            f"/{SERVICE}/RestoreSession",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=lambda b: b,
        )
        try:
            answer: bytes = callable_(
                chunks,
                timeout=deadline.remaining(),
                metadata=front.metadata(context),
                wait_for_ready=front.wait_for_ready,
            )
        except grpc.RpcError as error:
            raise _passed_on(error) from None
        return answer

    # -- events ----------------------------------------------------------------------------------

    def StreamEvents(
        self, request: pb.StreamEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[Any]:
        front = self._front
        if request.session_id:
            owner = (
                None
                if front.forwarded(context)
                else front.destination("StreamEvents", ("id", request.session_id), context)
            )
            if owner is None:
                events: Iterator[Any] = self._inner.StreamEvents(request, context)
                return events
            forwarded: Iterator[Any] = front.stream(owner, "StreamEvents", request, context)
            return forwarded
        if front.forwarded(context):
            marked: Iterator[Any] = self._inner.stream_events_marked(request, context)
            return marked
        self._inner.service.before_read(Read("stream_events", None))
        return merged_events(front, request, context, self._inner.stream_events_marked)

    # -- the whole graph -------------------------------------------------------------------------

    def MoveShard(self, request: pb.MoveShardRequest, context: grpc.ServicerContext) -> Any:
        """Run by the worker the shard goes to (see `servicers.moving`)."""
        front = self._front
        if not 0 <= request.worker < len(front.addresses):
            raise InvalidArgument(
                f"there is no worker {request.worker}: the graph has {len(front.addresses)}"
            )
        if request.worker != front.me and not front.forwarded(context):
            return front.call(request.worker, "MoveShard", request, context)
        if self._mover is None:
            raise FailedPrecondition(
                "shards of a graph served by several pods are placed by the operator; "
                "MoveShard moves shards between the workers of one data directory"
            )
        result = self._mover.move(request.shard)
        return pb.MoveShardResponse(
            epoch=result.epoch,
            copied_keys=result.copied_keys,
            fenced_seconds=result.fenced_seconds,
        )

    def GetShardMap(self, request: pb.GetShardMapRequest, context: grpc.ServicerContext) -> Any:
        front = self._front
        return pb.ShardMap(
            epoch=front.epoch,
            shards=len(front.owners),
            workers=[front.addresses[w] for w in sorted(front.addresses)],
            owners=front.owners,
        )

    def GetMetrics(self, request: pb.GetMetricsRequest, context: grpc.ServicerContext) -> Any:
        local = self._inner.GetMetrics(request, context)
        if self._front.forwarded(context):
            return local
        total = pb.GetMetricsResponse()
        for raw in self._gather("GetMetrics", request, context, local):
            part = pb.GetMetricsResponse.FromString(raw)
            total.sessions += part.sessions
            total.active_sessions += part.active_sessions
            total.edges += part.edges
            total.store_size_bytes += part.store_size_bytes
            for kind, count in part.nodes_by_kind.items():
                total.nodes_by_kind[kind] += count
            for name, count in part.requests_by_method.items():
                total.requests_by_method[name] += count
            total.token_usage.prompt_tokens += part.token_usage.prompt_tokens
            total.token_usage.completion_tokens += part.token_usage.completion_tokens
            total.token_usage.total_tokens += part.token_usage.total_tokens
        return total

    def Health(self, request: pb.HealthRequest, context: grpc.ServicerContext) -> Any:
        local = self._inner.Health(request, context)
        if self._front.forwarded(context):
            return local
        mine = (
            local if isinstance(local, pb.HealthResponse) else pb.HealthResponse.FromString(local)
        )
        try:  # a worker that does not answer within a second is not serving
            answers = self._gather("Health", request, context, mine, timeout=_HEALTH_SECONDS)
        except RequestError:
            mine.status = pb.HealthResponse.STATUS_NOT_SERVING
            return mine
        if any(pb.HealthResponse.FromString(raw).status != mine.status for raw in answers):
            mine.status = pb.HealthResponse.STATUS_NOT_SERVING
        return mine


class _End:
    """A worker's event stream ended (with `error`, unless None)."""

    def __init__(self, error: RequestError | None) -> None:
        self.error = error


def _read_events(
    front: Front,
    worker: int,
    request: pb.StreamEventsRequest,
    context: grpc.ServicerContext,
    into: queue.Queue[Any],
    calls: list[Any],
    local: Callable[[Any, Any], Iterator[pb.Event]],
) -> None:
    """Worker `worker`'s events (and watermarks) into `into`, then an `_End`; this worker's
    read from its own log (`local`), the others' through their StreamEvents."""
    try:
        if worker == front.me:
            events: Iterator[pb.Event] = local(request, context)
        else:
            callable_: Any = front.channels[worker].unary_stream(
                f"/{SERVICE}/StreamEvents",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=pb.Event.FromString,
            )
            call = callable_(request, metadata=front.metadata(context))
            calls.append(call)
            events = call
        for event in events:
            if not _put(into, (worker, event), context):
                return
    except grpc.RpcError as error:
        if error.code() is not grpc.StatusCode.CANCELLED:
            _put(into, (worker, _End(_passed_on(error))), context)
        return
    except RequestError as error:
        _put(into, (worker, _End(error)), context)
        return
    _put(into, (worker, _End(None)), context)


def _put(into: queue.Queue[Any], item: Any, context: grpc.ServicerContext) -> bool:
    """Queue `item` for the merge; False once the caller is gone (nobody takes it)."""
    while context.is_active():
        try:
            into.put(item, timeout=0.25)
        except queue.Full:
            continue
        return True
    return False


def merged_events(
    front: Front,
    request: pb.StreamEventsRequest,
    context: grpc.ServicerContext,
    local: Callable[[Any, Any], Iterator[pb.Event]],
) -> Iterator[pb.Event]:
    """Every worker's events in sequence order: an event goes out once every other worker
    has sent a later event or a watermark at or past it (so none can still come before it)."""
    workers = sorted([front.me, *front.others()])
    arrivals: queue.Queue[Any] = queue.Queue(maxsize=_MERGE_BUFFER)
    calls: list[Any] = []
    readers = [
        threading.Thread(
            target=_read_events,
            args=(front, worker, request, context, arrivals, calls, local),
            name=f"events-{worker}",
            daemon=True,
        )
        for worker in workers
    ]
    for reader in readers:
        reader.start()
    known = dict.fromkeys(workers, -1)  # each worker's events up to here have arrived
    waiting: list[tuple[int, int, pb.Event]] = []  # (sequence, worker, event), a heap
    last = request.from_sequence - 1 if request.from_sequence else 0
    try:
        while context.is_active():
            while waiting and waiting[0][0] <= min(known.values()):
                sequence, _, event = heapq.heappop(waiting)
                last = sequence
                yield event
            try:
                worker, item = arrivals.get(timeout=0.25)
            except queue.Empty:
                continue
            if isinstance(item, _End):
                if item.error is None:
                    return  # a worker stopping: the caller resumes after `last`
                if item.error.code is Code.UNAVAILABLE and "resume with" in str(item.error):
                    raise Unavailable(
                        "the shards of a worker changed (a shard moved); resume with "
                        f"from_sequence={last + 1}"
                    )
                if item.error.code is Code.RESOURCE_EXHAUSTED and "fell behind" in str(item.error):
                    raise ResourceExhaustedError(
                        "subscriber fell behind: a worker's buffer for it filled up; resume "
                        f"with from_sequence={last + 1}"
                    )
                raise item.error
            known[worker] = max(known[worker], item.sequence)
            if item.type != pb.EVENT_TYPE_UNSPECIFIED:
                heapq.heappush(waiting, (item.sequence, worker, item))
    finally:
        for call in calls:
            call.cancel()


def _export_owner(front: Any, start: bytes) -> int | None:
    """The worker of the session an export starting with `start` holds (None: it does not
    say; the restore then runs here and refuses the export itself)."""
    line = start.split(b"\n", 1)[0]
    try:
        header = json.loads(line)
        session_id = header["session_id"] if isinstance(header, dict) else None
    except (ValueError, KeyError):
        return None
    if not isinstance(session_id, str):
        return None
    owner: int | None = front.owner(("id", session_id))
    return owner


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _as_is(raw: bytes) -> bytes:
    return raw


class _Untrusting:
    """`front`, except that no call it sees comes from a worker (client ports)."""

    def __init__(self, front: Front) -> None:
        self._front = front

    def __getattr__(self, name: str) -> Any:
        return getattr(self._front, name)

    @staticmethod
    def forwarded(context: grpc.ServicerContext) -> bool:
        return False


def _nodes(stream: Iterator[Any]) -> Iterator[tuple[tuple[int, bytes], pb.Node]]:
    for batch in stream:
        message = batch if isinstance(batch, pb.QueryBatch) else pb.QueryBatch.FromString(batch)
        for node in message.nodes:
            yield (node.create_time.ToMicroseconds(), parse_id(node.id, "id")), node


def _token(fingerprint: bytes, last: tuple[int, bytes] | None) -> str:
    return encode_token(fingerprint, last) if last is not None else ""
