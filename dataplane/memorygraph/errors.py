"""The one error tree of MemoryGraph, shared by the server and the client.

    MemoryGraphError
    ├── ConfigError            bad settings or config file (CLI exit code 2)
    └── RequestError           a request the graph refuses; each maps to one gRPC status code
        ├── InvalidArgument    INVALID_ARGUMENT
        ├── NotFound           NOT_FOUND
        ├── AlreadyExists      ALREADY_EXISTS
        ├── FailedPrecondition FAILED_PRECONDITION
        ├── ResourceExhausted  RESOURCE_EXHAUSTED
        ├── OutOfRange         OUT_OF_RANGE (an event sequence no longer retained)
        ├── Unauthenticated    UNAUTHENTICATED
        ├── DeadlineExceeded   DEADLINE_EXCEEDED
        ├── Cancelled          CANCELLED
        └── Unavailable        UNAVAILABLE (client side: the server cannot be reached)

The server translates these to gRPC status codes in exactly one place (`servicers.errors`); the
client translates status codes back in exactly one place (`client`). Anything else raised on the
server is an internal error and reaches the client only as INTERNAL with a request id.
"""

from __future__ import annotations

import grpc

__all__ = [
    "AlreadyExists",
    "Cancelled",
    "ConfigError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InternalError",
    "InvalidArgument",
    "MemoryGraphError",
    "NotFound",
    "OutOfRange",
    "RequestError",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
]


class MemoryGraphError(Exception):
    """Base of every error MemoryGraph raises on purpose."""


class ConfigError(MemoryGraphError):
    """Settings or a config file that cannot be used."""


class RequestError(MemoryGraphError):
    """A request the graph refuses; `code` is the gRPC status it maps to."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN


class InvalidArgument(RequestError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(RequestError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(RequestError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(RequestError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(RequestError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class OutOfRange(RequestError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unauthenticated(RequestError):
    code = grpc.StatusCode.UNAUTHENTICATED


class DeadlineExceeded(RequestError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(RequestError):
    code = grpc.StatusCode.CANCELLED


class Unavailable(RequestError):
    code = grpc.StatusCode.UNAVAILABLE


class InternalError(RequestError):
    """The server failed unexpectedly; the message carries the request id to look up in logs."""

    code = grpc.StatusCode.INTERNAL


BY_CODE: dict[grpc.StatusCode, type[RequestError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        ResourceExhausted,
        OutOfRange,
        Unauthenticated,
        DeadlineExceeded,
        Cancelled,
        Unavailable,
        InternalError,
    )
}
