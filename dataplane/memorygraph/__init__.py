"""MemoryGraph: the memory of LLM applications as a typed graph, served over gRPC.

Applications use `Client` (blocking) or `AsyncClient` (asyncio); failures are raised as the
error classes below (see `memorygraph.errors` for the tree).
"""

__version__ = "0.1.0"

from memorygraph.client import AsyncClient, Client
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
