"""The one error tree of MemoryGraph, shared by the server and the client.

    MemoryGraphError
    ├── ConfigError            bad settings or config file (CLI exit code 2)
    └── RequestError           a request the graph refuses; each maps to one gRPC status code
        ├── InvalidArgument    INVALID_ARGUMENT
        ├── NotFound           NOT_FOUND
        ├── AlreadyExists      ALREADY_EXISTS
        ├── FailedPrecondition FAILED_PRECONDITION
        │   └── WrongOwner     a call routed with a stale shard map (says the owner)
        ├── ResourceExhausted  RESOURCE_EXHAUSTED
        ├── OutOfRange         OUT_OF_RANGE (an event sequence no longer retained)
        ├── Unauthenticated    UNAUTHENTICATED
        ├── DeadlineExceeded   DEADLINE_EXCEEDED
        ├── Cancelled          CANCELLED
        └── Unavailable        UNAVAILABLE (client side: the server cannot be reached)

Each class carries a transport-neutral `Code`. The server translates it to a gRPC status in
exactly one place (`servicers.status`); the client translates gRPC statuses back in exactly one
place (`client.errors`). Anything else raised on the server is an internal error and reaches the
client only as INTERNAL with a request id. This module imports nothing but the standard library.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AlreadyExists",
    "Cancelled",
    "Code",
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
    "WrongOwner",
]


class Code(StrEnum):
    """Why a request failed, named as the gRPC status codes are (every one but OK)."""

    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    ABORTED = "ABORTED"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    UNIMPLEMENTED = "UNIMPLEMENTED"
    INTERNAL = "INTERNAL"
    UNAVAILABLE = "UNAVAILABLE"
    DATA_LOSS = "DATA_LOSS"
    UNAUTHENTICATED = "UNAUTHENTICATED"


class MemoryGraphError(Exception):
    """Base of every error MemoryGraph raises on purpose."""


class ConfigError(MemoryGraphError):
    """Settings or a config file that cannot be used."""


class RequestError(MemoryGraphError):
    """A request the graph refuses; `code` says why, the same on both sides of the wire."""

    code: Code = Code.UNKNOWN

    def trailers(self) -> tuple[tuple[str, str], ...]:
        """What the error says beyond its code and message, as gRPC trailing metadata."""
        return ()


class InvalidArgument(RequestError):
    code = Code.INVALID_ARGUMENT


class NotFound(RequestError):
    code = Code.NOT_FOUND


class AlreadyExists(RequestError):
    code = Code.ALREADY_EXISTS


class FailedPrecondition(RequestError):
    code = Code.FAILED_PRECONDITION


class WrongOwner(FailedPrecondition):
    """A call sent to a worker by a client that routes with the shard map (it named the map's
    epoch) reached a worker that does not own the call's shard. Nothing was done; send the call
    to `owner` (a worker's address), which owns `shard` in the map at `epoch`."""

    OWNER_KEY = "x-memorygraph-owner"
    EPOCH_KEY = "x-memorygraph-epoch"
    SHARD_KEY = "x-memorygraph-shard"

    def __init__(self, message: str, *, shard: int, owner: str, epoch: int) -> None:
        super().__init__(message)
        self.shard = shard
        self.owner = owner
        self.epoch = epoch

    def trailers(self) -> tuple[tuple[str, str], ...]:
        return (
            (self.OWNER_KEY, self.owner),
            (self.EPOCH_KEY, str(self.epoch)),
            (self.SHARD_KEY, str(self.shard)),
        )

    @classmethod
    def from_trailers(cls, message: str, trailers: dict[str, str]) -> WrongOwner | None:
        """The redirect these trailers describe (None: they are not one)."""
        try:
            return cls(
                message,
                shard=int(trailers[cls.SHARD_KEY]),
                owner=trailers[cls.OWNER_KEY],
                epoch=int(trailers[cls.EPOCH_KEY]),
            )
        except (KeyError, ValueError):
            return None


class ResourceExhausted(RequestError):
    code = Code.RESOURCE_EXHAUSTED


class OutOfRange(RequestError):
    code = Code.OUT_OF_RANGE


class Unauthenticated(RequestError):
    code = Code.UNAUTHENTICATED


class DeadlineExceeded(RequestError):
    code = Code.DEADLINE_EXCEEDED


class Cancelled(RequestError):
    code = Code.CANCELLED


class Unavailable(RequestError):
    code = Code.UNAVAILABLE


class InternalError(RequestError):
    """The server failed unexpectedly; the message carries the request id to look up in logs."""

    code = Code.INTERNAL


ERROR_CLASSES: tuple[type[RequestError], ...] = (
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
"""The class raised for each code that has one; other codes are a plain `RequestError`."""
