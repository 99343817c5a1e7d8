"""Everything every RPC goes through once it is admitted (`servicers.gate` authenticates
before), in one place:

1. a request id (the caller's ``x-request-id`` or a new one), attached to every log line of the
   call and sent back as trailing metadata when the call fails; worked out only when one of
   those needs it (reading the caller's metadata on every call measured 6% fewer GetNode
   calls per second under load);
2. requests that do not parse as the method's message: INVALID_ARGUMENT, logged at most once a
   minute (gRPC itself would answer INTERNAL and log a traceback for each);
3. the cap on concurrent long-lived streams (excess → RESOURCE_EXHAUSTED at once), and the
   write timeout of every stream: one whose client takes no message for that long is ended
   (`servicers.stalls`);
4. the deadline: the caller's, or the server default for calls without one (long-lived
   streams excepted), checked by long-running work through `memorygraph.deadline`;
5. metrics: requests and latency by method and code, in-flight calls, open streams;
6. errors → status codes: `RequestError` subclasses map to their code and message; anything
   else becomes INTERNAL "internal error (request id …)" with the traceback only in the log;
7. the threads a call runs on: unary reads on the server's few (`servicers.pools`), every
   other call on the waiting pool, when the server has one.

Services register with `HandlerWrapper.wrapping(server)`, which wraps each method's
handler once, at registration: unlike a grpc `ServerInterceptor`, nothing runs per call to
find or wrap the handler.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import grpc

from memorygraph import deadline
from memorygraph.errors import Code, InvalidArgument, RequestError
from memorygraph.logs import (
    LazyRequestId,
    RateLimitedLog,
    RequestIdToken,
    current_request_id,
    request_id_var,
)
from memorygraph.metrics import definitions as metrics
from memorygraph.metrics.per_thread import ThreadCounts
from memorygraph.servicers.stalls import StalledStreams

__all__ = ["HandlerSettings", "HandlerWrapper"]

log = logging.getLogger("memorygraph.rpc")

REQUEST_ID_KEY = "x-request-id"
# Streams that live as long as the client wants: capped in number, exempt from the default
# deadline. (Health Watch and reflection streams among them.)
LONG_LIVED = frozenset(
    {"StreamEvents", "SubscribeToSession", "Ingest", "Watch", "ServerReflectionInfo"}
)
# Unary calls that only read: they compute and do not wait (unless forwarded to the worker
# that owns their shard), so they run on a few threads (see `servicers.pools`).
READS = frozenset(
    {
        "GetSession",
        "ListSessions",
        "GetNode",
        "BatchGetNodes",
        "GetEdges",
        "Query",
        "Traverse",
        "GetTemplate",
        "ListArchiveCandidates",
        "Health",
        "GetMetrics",
        "GetShardMap",
    }
)
# What the client of a stream ended for not reading can do about it.
STALLED_HINTS = {
    "StreamEvents": "resume with from_sequence one past the last event received",
    "SubscribeToSession": "resume with from_sequence one past the last event received",
    "Ingest": "the batches acknowledged are committed",
    "StreamQuery": "query again and read the batches as they come",
    "ExportSession": "export again and read the pieces as they come",
}
# The one translation of the domain's error codes into gRPC statuses (same names).
STATUS_CODES: dict[Code, grpc.StatusCode] = {code: grpc.StatusCode[code.name] for code in Code}
_OK = grpc.StatusCode.OK.name


def _never(full_method: str) -> bool:
    return False


@dataclass(frozen=True)
class HandlerSettings:
    max_streams: int = 32
    default_deadline_seconds: float | None = 30.0
    # Streams of methods open to callers without a key (`exempt`) count against a small cap of
    # their own, so that they can take neither the keyed callers' streams nor many workers.
    max_open_streams: int = 4
    exempt: Callable[[str], bool] = _never
    # Streams whose client takes no message for this long are ended (None: never).
    write_timeout_seconds: float | None = 30.0
    # Where every call but a unary read runs (None: with the reads; see `servicers.pools`).
    waiting_pool: futures.ThreadPoolExecutor | None = None


class _StreamCap:
    """How many long-lived streams of one kind may be open at once."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what
        self.count = 0
        self._lock = threading.Lock()

    def admit(self) -> bool:
        with self._lock:
            admitted = self.count < self.limit
            self.count += admitted
        return admitted

    def release(self) -> None:
        with self._lock:
            self.count -= 1


class _Malformed:
    """What a request that does not parse becomes: the handler refuses it."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


_malformed_log = RateLimitedLog(log, interval=60.0)


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """`deserialize`, except that bytes it cannot parse become a `_Malformed`."""
    if deserialize is None:
        return None

    def read(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except Exception as exc:  # protobuf's DecodeError, or anything a parser raises
            return _Malformed(exc)

    return read


def _refuse_malformed(method: str, request: _Malformed) -> NoReturn:
    _malformed_log.info("%s: a request that is not a valid message: %s", method, request.error)
    raise InvalidArgument(f"the request is not a valid {method} request message")


def _parsed(method: str, requests: Iterator[Any]) -> Iterator[Any]:
    """A stream of requests, refusing the first that did not parse."""
    for request in requests:
        if isinstance(request, _Malformed):
            _refuse_malformed(method, request)
        yield request


B = TypeVar("B")


def _refusing_malformed(
    method: str, behaviour: Callable[[Any, Any], B], *, streaming: bool
) -> Callable[[Any, Any], B]:
    """`behaviour`, refusing a request that did not parse (of a stream of requests, the first
    such); built once per method."""
    if streaming:

        def parsed(requests: Iterator[Any], context: Any) -> B:
            return behaviour(_parsed(method, requests), context)

        return parsed

    def checked(request: Any, context: Any) -> B:
        if isinstance(request, _Malformed):
            _refuse_malformed(method, request)
        return behaviour(request, context)

    return checked


# Request ids the server makes: a random prefix per process and a counter, unique without a
# system call per request (they name a call in logs; they are not secrets).
_ID_PREFIX = secrets.token_hex(4)
_id_counter = itertools.count(1)


def _request_id(context: grpc.ServicerContext, number: int) -> str:
    """The caller's request id, else the one numbered `number` for it."""
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return f"{_ID_PREFIX}{number:08x}"


# What a call sets for its duration: its deadline and its request id.
_Scope = tuple[deadline.Token, RequestIdToken]


def _end(scope: _Scope) -> None:
    """Undo what `_begin` set: nothing after the call (a log line of gRPC's, the thread's
    next idle moment) is taken for part of it, and its context is let go."""
    deadline_token, named = scope
    # A token resets only in the context it was made in (gRPC runs a call, its stream's
    # generator included, in one); nothing here may hide how the call itself ended. (try, not
    # contextlib.suppress: this runs on every call, and a context manager costs more.)
    try:  # noqa: SIM105
        deadline.reset(deadline_token)
    except (ValueError, RuntimeError):
        pass
    try:  # noqa: SIM105
        request_id_var.reset(named)
    except (ValueError, RuntimeError):
        pass


def _status(
    method: str, exc: Exception, context: grpc.ServicerContext
) -> tuple[grpc.StatusCode, str]:
    """The status a failed RPC ends with; unexpected errors are logged with their traceback."""
    if isinstance(exc, RequestError):
        # A caller's mistake, counted by code in the RPC metrics; a line each at debug level
        # only (callers decide how many there are).
        log.debug("%s failed: %s: %s", method, exc.code, exc)
        return STATUS_CODES[exc.code], str(exc)
    if not context.is_active():  # the caller went away: its stream of requests ends in an error
        log.debug("%s ended: the call was cancelled (%s)", method, type(exc).__name__)
        return grpc.StatusCode.CANCELLED, "the call was cancelled"
    log.exception("%s raised an unexpected error", method)
    return grpc.StatusCode.INTERNAL, f"internal error (request id {current_request_id()})"


def _fail(
    context: grpc.ServicerContext, code: grpc.StatusCode, message: str, exc: Exception
) -> NoReturn:
    """End the call with `code`, naming its request id in the trailing metadata (and what
    else the error says there: a redirect's owner)."""
    extra = exc.trailers() if isinstance(exc, RequestError) else ()
    context.set_trailing_metadata(((REQUEST_ID_KEY, current_request_id()), *extra))
    context.abort(code, message)


class _WrappingServer(grpc.Server):
    """`server`, except that every handler registered with it is wrapped first."""

    def __init__(self, server: grpc.Server, wrapper: HandlerWrapper) -> None:
        self._server = server
        self._wrapper = wrapper

    def add_insecure_port(self, address: str) -> int:
        return self._server.add_insecure_port(address)

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        return self._server.add_secure_port(address, server_credentials)

    def start(self) -> None:
        self._server.start()

    def stop(self, grace: float | None) -> threading.Event:
        return self._server.stop(grace)

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self._server.wait_for_termination(timeout)

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(
            tuple(_WrappedGeneric(h, self._wrapper) for h in generic_rpc_handlers)
        )

    def add_registered_method_handlers(self, service_name: str, method_handlers: Any) -> None:
        self._server.add_registered_method_handlers(
            service_name,
            {
                name: self._wrapper.wrap(f"/{service_name}/{name}", handler)
                for name, handler in method_handlers.items()
            },
        )


class _WrappedGeneric(grpc.GenericRpcHandler):
    def __init__(self, inner: grpc.GenericRpcHandler, wrapper: HandlerWrapper) -> None:
        self._inner = inner
        self._wrapper = wrapper

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        return self._wrapper.wrap(handler_call_details.method, handler)


class HandlerWrapper:
    def __init__(self, settings: HandlerSettings | None = None) -> None:
        self.settings = settings or HandlerSettings()
        self.calls = ThreadCounts()  # calls begun, by method
        self._streams = _StreamCap(self.settings.max_streams, "open streams")
        self._open_streams = _StreamCap(
            self.settings.max_open_streams, "open streams without a key"
        )
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        timeout = self.settings.write_timeout_seconds
        self.stalls = StalledStreams(timeout) if timeout is not None else None

    def request_counts(self) -> dict[str, int]:
        return self.calls.totals()

    def wrapping(self, server: grpc.Server) -> grpc.Server:
        """`server`, wrapping the handlers of every service registered with it."""
        return _WrappingServer(server, self)

    def wrap(
        self, full_method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """`handler` with everything every RPC goes through; built once per method."""
        wrapped = self._wrapped.get(full_method)
        if wrapped is None:
            wrapped = self._wrapped.setdefault(full_method, self._wrap(full_method, handler))
        return wrapped

    def _wrap(
        self, full_method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = full_method.rsplit("/", 1)[-1]
        cap = None
        if method in LONG_LIVED:
            cap = self._open_streams if self.settings.exempt(full_method) else self._streams
        read = _tolerant(handler.request_deserializer)
        wrapped: grpc.RpcMethodHandler[Any, Any]
        if handler.unary_unary is not None:
            behaviour = self._wrap_unary(method, handler.unary_unary, streaming=False)
            wrapped = grpc.unary_unary_rpc_method_handler(
                behaviour if method in READS else self._on_waiting_pool(behaviour),
                request_deserializer=read,
                response_serializer=handler.response_serializer,
            )
        elif handler.stream_unary is not None:
            wrapped = grpc.stream_unary_rpc_method_handler(
                self._on_waiting_pool(
                    self._wrap_unary(method, handler.stream_unary, streaming=True)
                ),
                request_deserializer=read,
                response_serializer=handler.response_serializer,
            )
        elif handler.unary_stream is not None:
            wrapped = grpc.unary_stream_rpc_method_handler(
                self._on_waiting_pool(
                    self._wrap_stream(method, handler.unary_stream, cap, streaming=False)
                ),
                request_deserializer=read,
                response_serializer=handler.response_serializer,
            )
        else:
            assert handler.stream_stream is not None
            wrapped = grpc.stream_stream_rpc_method_handler(
                self._on_waiting_pool(
                    self._wrap_stream(method, handler.stream_stream, cap, streaming=True)
                ),
                request_deserializer=read,
                response_serializer=handler.response_serializer,
            )
        return wrapped

    def _on_waiting_pool(self, behaviour: Callable[..., Any]) -> Callable[..., Any]:
        """`behaviour`, run on the waiting pool when there is one: a stream holds its thread as
        long as its client keeps it open, a write waits for its sync with others to batch, and
        the few threads that serve reads would be held up by either."""
        pool = self.settings.waiting_pool
        if pool is not None:
            # gRPC runs a behaviour on the pool it names (an experimental hook of its server).
            behaviour.experimental_thread_pool = pool  # type: ignore[attr-defined]
        return behaviour

    def _begin(
        self, method: str, context: grpc.ServicerContext, *, long_lived: bool
    ) -> tuple[float, _Scope]:
        """What every call does first: its start time, and what `_end` undoes."""
        started = time.perf_counter()
        # Numbered now, looked for in the caller's metadata only when asked for: the same id
        # whoever asks, and in whichever thread.
        number = next(_id_counter)
        named = request_id_var.set(LazyRequestId(_request_id, context, number))
        self.calls.add(method)
        metrics.RPC.begin()
        default = None if long_lived else self.settings.default_deadline_seconds
        until = started + default if default is not None else None
        return started, (deadline.start(context, until), named)

    def _wrap_unary(
        self, method: str, behaviour: Callable[[Any, Any], Any], *, streaming: bool
    ) -> Callable[..., Any]:
        long_lived = method in LONG_LIVED  # Ingest: a stream of requests, no default deadline
        behaviour = _refusing_malformed(method, behaviour, streaming=streaming)

        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            started, scope = self._begin(method, context, long_lived=long_lived)
            code = _OK  # its name: an enum member's name is looked up anew each time
            try:
                return behaviour(request, context)
            except Exception as exc:
                status, message = _status(method, exc, context)
                code = status.name
                _fail(context, status, message, exc)
            finally:
                metrics.RPC.end(method, code, time.perf_counter() - started)
                _end(scope)

        return handle

    def _wrap_stream(
        self,
        method: str,
        behaviour: Callable[[Any, Any], Iterator[Any]],
        cap: _StreamCap | None,
        *,
        streaming: bool,
    ) -> Callable[..., Iterator[Any]]:
        long_lived = cap is not None
        behaviour = _refusing_malformed(method, behaviour, streaming=streaming)

        def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            if cap is not None:
                if not cap.admit():
                    metrics.observe_rejection(method, "RESOURCE_EXHAUSTED")
                    context.abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"too many {cap.what} (limit {cap.limit}); retry later",
                    )
                metrics.OPEN_STREAMS.inc()
            started, scope = self._begin(method, context, long_lived=long_lived)
            code = grpc.StatusCode.OK
            try:
                responses = behaviour(request, context)
                if self.stalls is not None:  # every stream: a send blocks its thread
                    hint = STALLED_HINTS.get(method, "")
                    responses = self.stalls.watched(method, context, responses, hint)
                yield from responses
            except Exception as exc:
                code, message = _status(method, exc, context)
                _fail(context, code, message, exc)
            finally:
                if cap is not None:
                    metrics.OPEN_STREAMS.dec()
                    cap.release()
                metrics.RPC.end(method, code.name, time.perf_counter() - started)
                _end(scope)

        return handle
