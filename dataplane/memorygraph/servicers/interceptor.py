"""The one place where errors become gRPC status codes, and where every RPC gets a request id
and is counted.

- `RequestError` subclasses → their status code and message.
- Anything else → INTERNAL with "internal error (request id …)"; the traceback goes to the log
  under that id and never to the client.
The request id comes from the caller's ``x-request-id`` metadata or is generated, and is sent
back as initial metadata.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from memorygraph import metrics
from memorygraph.errors import RequestError

__all__ = ["ServiceInterceptor"]

log = logging.getLogger("memorygraph.rpc")

REQUEST_ID_KEY = "x-request-id"


def _request_id(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return uuid.uuid4().hex


def _status(method: str, rid: str, exc: Exception) -> tuple[grpc.StatusCode, str]:
    """The status a failed RPC ends with; unexpected errors are logged with their traceback."""
    if isinstance(exc, RequestError):
        code, message = exc.code, str(exc)
        log.info("%s failed: %s: %s", method, code.name, message, extra={"request_id": rid})
    else:
        code, message = grpc.StatusCode.INTERNAL, f"internal error (request id {rid})"
        log.exception("%s raised an unexpected error", method, extra={"request_id": rid})
    return code, message


class ServiceInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def request_counts(self) -> dict[str, int]:
        return dict(self.calls)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method.rsplit("/", 1)[-1]
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(method, handler.stream_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._wrap_stream(method, handler.stream_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _start(self, method: str, context: grpc.ServicerContext) -> str:
        rid = _request_id(context)
        context.send_initial_metadata(((REQUEST_ID_KEY, rid),))
        self.calls[method] += 1
        return rid

    def _wrap_unary(self, method: str, behaviour: Callable[[Any, Any], Any]) -> Callable[..., Any]:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            rid = self._start(method, context)
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return behaviour(request, context)
            except Exception as exc:
                code, message = _status(method, rid, exc)
                context.abort(code, message)
            finally:
                metrics.observe_rpc(method, code.name, time.perf_counter() - started)

        return handle

    def _wrap_stream(
        self, method: str, behaviour: Callable[[Any, Any], Iterator[Any]]
    ) -> Callable[..., Iterator[Any]]:
        def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            rid = self._start(method, context)
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                yield from behaviour(request, context)
            except Exception as exc:
                code, message = _status(method, rid, exc)
                context.abort(code, message)
            finally:
                metrics.observe_rpc(method, code.name, time.perf_counter() - started)

        return handle
