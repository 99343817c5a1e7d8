"""Everything every RPC goes through, in one place:

1. a request id (the caller's ``x-request-id`` or a new one), sent back as trailing metadata and
   attached to every log line of the call;
2. authentication, when enabled (health checks and reflection may stay open);
3. the cap on concurrent long-lived streams (excess → RESOURCE_EXHAUSTED at once);
4. the deadline: the caller's, or the server default for calls without one (long-lived
   streams excepted), checked by long-running work through `memorygraph.deadline`;
5. metrics: requests and latency by method and code, in-flight calls, open streams;
6. errors → status codes: `RequestError` subclasses map to their code and message; anything
   else becomes INTERNAL "internal error (request id …)" with the traceback only in the log.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from memorygraph import deadline, metrics
from memorygraph.auth import KeyRing, presented_key
from memorygraph.errors import RequestError
from memorygraph.logs import request_id_var

__all__ = ["InterceptorSettings", "ServiceInterceptor"]

log = logging.getLogger("memorygraph.rpc")

REQUEST_ID_KEY = "x-request-id"
HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIXES = (
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
# Streams that live as long as the client wants: capped in number, exempt from the default
# deadline.
LONG_LIVED = frozenset({"StreamEvents", "SubscribeToSession", "Ingest"})
KEY_REFRESH_SECONDS = 5.0
NO_DEADLINE = 10**8  # seconds; more than any real deadline


@dataclass(frozen=True)
class InterceptorSettings:
    keyring: KeyRing | None = None
    open_health: bool = True
    open_reflection: bool = True
    max_streams: int = 32
    default_deadline_seconds: float | None = 30.0


def _request_id(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return secrets.token_hex(8)


def _status(method: str, exc: Exception) -> tuple[grpc.StatusCode, str]:
    """The status a failed RPC ends with; unexpected errors are logged with their traceback."""
    if isinstance(exc, RequestError):
        log.info("%s failed: %s: %s", method, exc.code.name, exc)
        return exc.code, str(exc)
    log.exception("%s raised an unexpected error", method)
    return grpc.StatusCode.INTERNAL, f"internal error (request id {request_id_var.get()})"


def _rejecting(
    handler: grpc.RpcMethodHandler[Any, Any], code: grpc.StatusCode, message: str
) -> Any:
    """A handler of the same shape as `handler` that fails with `code` before doing anything."""

    def reject(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    factories = {
        "unary_unary": grpc.unary_unary_rpc_method_handler,
        "unary_stream": grpc.unary_stream_rpc_method_handler,
        "stream_unary": grpc.stream_unary_rpc_method_handler,
        "stream_stream": grpc.stream_stream_rpc_method_handler,
    }
    for kind, factory in factories.items():
        if getattr(handler, kind) is not None:
            return factory(
                reject,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler


class ServiceInterceptor(grpc.ServerInterceptor):
    def __init__(self, settings: InterceptorSettings | None = None) -> None:
        self.settings = settings or InterceptorSettings()
        self.calls: Counter[str] = Counter()
        self._streams = 0
        self._lock = threading.Lock()
        self._keys_checked = time.monotonic()
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def request_counts(self) -> dict[str, int]:
        return dict(self.calls)

    def _authenticated(self, full_method: str, metadata: Any) -> bool:
        keyring = self.settings.keyring
        if keyring is None:
            return True
        if self.settings.open_health and full_method.startswith(HEALTH_PREFIX):
            return True
        if self.settings.open_reflection and full_method.startswith(REFLECTION_PREFIXES):
            return True
        now = time.monotonic()
        if now - self._keys_checked > KEY_REFRESH_SECONDS:
            self._keys_checked = now
            keyring.refresh()
        return keyring.accepts(presented_key(metadata))

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(details)
        if handler is None:
            return None
        full_method: str = details.method
        if not self._authenticated(full_method, details.invocation_metadata):
            method = full_method.rsplit("/", 1)[-1]
            metrics.observe_rejection(method, "UNAUTHENTICATED")
            rejecting: grpc.RpcMethodHandler[Any, Any] = _rejecting(
                handler,
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or invalid API key: send 'authorization: Bearer <key>'",
            )
            return rejecting
        # Handlers are per method, so their wrappers are built once, not on every call.
        wrapped = self._wrapped.get(full_method)
        if wrapped is None:
            wrapped = self._wrapped.setdefault(full_method, self._wrap(full_method, handler))
        return wrapped

    def _wrap(
        self, full_method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = full_method.rsplit("/", 1)[-1]
        long_lived = method in LONG_LIVED
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(method, handler.stream_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream, long_lived=long_lived),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        assert handler.stream_stream is not None
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_stream(method, handler.stream_stream, long_lived=long_lived),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _begin(
        self, method: str, context: grpc.ServicerContext, *, long_lived: bool
    ) -> deadline.Tokens:
        rid = _request_id(context)
        request_id_var.set(rid)
        # Trailing metadata rides on the status the call ends with anyway; initial metadata
        # would cost a separate write per call.
        context.set_trailing_metadata(((REQUEST_ID_KEY, rid),))
        self.calls[method] += 1
        remaining: float | None = context.time_remaining()
        if remaining is not None and remaining > NO_DEADLINE:
            remaining = None  # gRPC reports "no deadline" as an infinitely distant one
        if remaining is None and not long_lived:
            remaining = self.settings.default_deadline_seconds
        return deadline.set_deadline(remaining, context.is_active)

    def _wrap_unary(self, method: str, behaviour: Callable[[Any, Any], Any]) -> Callable[..., Any]:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            token = self._begin(method, context, long_lived=method in LONG_LIVED)
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            metrics.IN_FLIGHT.inc()
            try:
                return behaviour(request, context)
            except Exception as exc:
                code, message = _status(method, exc)
                context.abort(code, message)
            finally:
                metrics.IN_FLIGHT.dec()
                metrics.observe_rpc(method, code.name, time.perf_counter() - started)
                deadline.reset(token)

        return handle

    def _wrap_stream(
        self,
        method: str,
        behaviour: Callable[[Any, Any], Iterator[Any]],
        *,
        long_lived: bool,
    ) -> Callable[..., Iterator[Any]]:
        def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            if long_lived:
                with self._lock:
                    admitted = self._streams < self.settings.max_streams
                    self._streams += admitted
                if not admitted:
                    metrics.observe_rejection(method, "RESOURCE_EXHAUSTED")
                    context.abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"too many open streams (limit {self.settings.max_streams}); retry later",
                    )
                metrics.OPEN_STREAMS.inc()
            token = self._begin(method, context, long_lived=long_lived)
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            metrics.IN_FLIGHT.inc()
            try:
                yield from behaviour(request, context)
            except Exception as exc:
                code, message = _status(method, exc)
                context.abort(code, message)
            finally:
                metrics.IN_FLIGHT.dec()
                if long_lived:
                    metrics.OPEN_STREAMS.dec()
                    with self._lock:
                        self._streams -= 1
                metrics.observe_rpc(method, code.name, time.perf_counter() - started)
                deadline.reset(token)

        return handle
