"""Admission of every call before it costs a worker thread: authentication from the call's
metadata, on gRPC's own serving thread.

gRPC's threaded server hands a unary call to a worker thread as soon as it arrives, and that
thread then waits for the request message; a caller that never sends one holds the thread
until it gives up. Checked here, a call without valid credentials is answered UNAUTHENTICATED
at once by a handler that never reads the request, so no number of such calls can occupy the
workers. Calls to methods the server does not have are left to gRPC (UNIMPLEMENTED) and counted
under no method name: names a caller makes up never become metric labels.

Health checks and reflection may stay open (settings); everything else needs a key when a key
ring is configured.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc

from memorygraph.auth import KeyRing, presented_key
from memorygraph.metrics import definitions as metrics

__all__ = ["HEALTH_PREFIX", "REFLECTION_PREFIXES", "CallGate"]

HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIXES = (
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
KEY_REFRESH_SECONDS = 5.0
UNAUTHENTICATED_MESSAGE = "missing or invalid API key: send 'authorization: Bearer <key>'"


def _refuse(requests: Any, context: grpc.ServicerContext) -> None:
    context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)


# Shaped as a client-streaming handler whatever the method's real shape: gRPC starts such a
# handler without waiting for a request message, and this one never reads one.
_REFUSAL: grpc.RpcMethodHandler[Any, Any] = grpc.stream_unary_rpc_method_handler(_refuse)


class CallGate(grpc.ServerInterceptor):
    def __init__(
        self,
        keyring: KeyRing | None,
        *,
        open_health: bool = True,
        open_reflection: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keyring = keyring
        self.open_health = open_health
        self.open_reflection = open_reflection
        self.clock = clock
        self._keys_checked = clock()

    def is_open(self, full_method: str) -> bool:
        """Whether calls of `full_method` need no credentials."""
        if self.keyring is None:
            return True
        if self.open_health and full_method.startswith(HEALTH_PREFIX):
            return True
        return self.open_reflection and full_method.startswith(REFLECTION_PREFIXES)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(details)
        keyring = self.keyring
        if handler is None or keyring is None or self.is_open(details.method):
            return handler
        now = self.clock()
        if now - self._keys_checked > KEY_REFRESH_SECONDS:
            self._keys_checked = now
            keyring.refresh()
        if keyring.accepts(presented_key(details.invocation_metadata)):
            return handler
        metrics.observe_rejection(details.method.rsplit("/", 1)[-1], "UNAUTHENTICATED")
        return _REFUSAL
