"""MemoryGraph: the memory of LLM applications as a typed graph, served over gRPC.

Applications use `Client` (blocking) or `AsyncClient` (asyncio); failures are raised as the
error classes below (see `memorygraph.errors` for the tree).

Importing this package is cheap: the clients (and with them gRPC and the generated bindings)
load on first use of `Client` or `AsyncClient`, so the operator and the command-line tools can
import the parts they need alone.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from memorygraph.errors import (
    AlreadyExists,
    Cancelled,
    ConfigError,
    DeadlineExceeded,
    FailedPrecondition,
    InternalError,
    InvalidArgument,
    MemoryGraphError,
    NotFound,
    OutOfRange,
    RequestError,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

if TYPE_CHECKING:
    from memorygraph.client import AsyncClient, Client

try:
    __version__ = version("memorygraph")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AlreadyExists",
    "AsyncClient",
    "Cancelled",
    "Client",
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
    "__version__",
]

_LAZY = {"Client", "AsyncClient"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from memorygraph import client

        return getattr(client, name)
    raise AttributeError(f"module 'memorygraph' has no attribute {name!r}")
