"""Admission of every call before it costs a worker thread: authentication from the call's
metadata, on gRPC's own serving thread.

gRPC's threaded server hands a unary call to a worker thread as soon as it arrives, and that
thread then waits for the request message; a caller that never sends one holds the thread
until it gives up. Checked here, a call without valid credentials is answered UNAUTHENTICATED
at once by a handler that never reads the request, so no number of such calls can occupy the
workers. Calls to methods the server does not have are left to gRPC (UNIMPLEMENTED) and counted
under no method name: names a caller makes up never become metric labels.

Health checks and reflection may stay open (settings); everything else needs a key when a key
ring is configured. A health check (`Check`) is answered here too, with the server's status,
without reading its request and on threads of its own: no caller can make probes wait, neither by
keeping every worker busy nor by sending checks that never send their request. (The status is
the server's whatever service a check names: the server has one, under `""` and its service's
name.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from memorygraph.auth import KeyRing, presented_key
from memorygraph.metrics import definitions as metrics

__all__ = ["HEALTH_CHECK", "HEALTH_PREFIX", "REFLECTION_PREFIXES", "CallGate", "ServingStatus"]

HEALTH_PREFIX = "/grpc.health.v1.Health/"
HEALTH_CHECK = HEALTH_PREFIX + "Check"
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


class ServingStatus:
    """The server's health status, as health checks report it (`HealthCheckResponse`)."""

    def __init__(self) -> None:
        self.status: int = health_pb2.HealthCheckResponse.NOT_SERVING

    def set(self, serving: bool) -> None:
        self.status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )


def _check_answer(status: ServingStatus, pool: futures.Executor) -> grpc.RpcMethodHandler[Any, Any]:
    def answer(requests: Any, context: grpc.ServicerContext) -> health_pb2.HealthCheckResponse:
        return health_pb2.HealthCheckResponse(status=status.status)

    # gRPC runs a behaviour on the pool it names (an experimental hook of its server).
    answer.experimental_thread_pool = pool  # type: ignore[attr-defined]
    return grpc.stream_unary_rpc_method_handler(
        answer, response_serializer=health_pb2.HealthCheckResponse.SerializeToString
    )


class CallGate(grpc.ServerInterceptor):
    def __init__(
        self,
        keyring: KeyRing | None,
        *,
        status: ServingStatus,
        health_pool: futures.Executor,
        open_health: bool = True,
        open_reflection: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keyring = keyring
        self.open_health = open_health
        self.open_reflection = open_reflection
        self.clock = clock
        self._keys_checked = clock()
        self._check = _check_answer(status, health_pool)

    def is_open(self, full_method: str) -> bool:
        """Whether calls of `full_method` need no credentials."""
        return self.keyring is None or self.exempt(full_method)

    def exempt(self, full_method: str) -> bool:
        """Whether `full_method` is open although keys are required (health checks and
        reflection, by the settings). Watching health is not: its streams last."""
        if self.keyring is None:
            return False
        if self.open_health and full_method == HEALTH_CHECK:
            return True
        return self.open_reflection and full_method.startswith(REFLECTION_PREFIXES)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(details)
        keyring = self.keyring
        method = details.method
        if handler is None:
            return None
        if keyring is not None and not self.exempt(method):
            now = self.clock()
            if now - self._keys_checked > KEY_REFRESH_SECONDS:
                self._keys_checked = now
                keyring.refresh()
            if not keyring.accepts(presented_key(details.invocation_metadata)):
                metrics.observe_rejection(method.rsplit("/", 1)[-1], "UNAUTHENTICATED")
                return _REFUSAL
        return self._check if method == HEALTH_CHECK else handler
