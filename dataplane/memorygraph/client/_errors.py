"""The one place gRPC failures become MemoryGraph errors.

Both clients catch `grpc.RpcError` around every call and raise what `translate` returns: the
`memorygraph.errors` class of the status, with the server's message. Nothing else in the client
looks at a gRPC status code.
"""

from __future__ import annotations

from typing import Any

import grpc

from memorygraph.errors import ERROR_CLASSES, Code, RequestError, WrongOwner

__all__ = ["translate"]

# gRPC statuses back to the error classes, by the code names both share.
_ERRORS: dict[grpc.StatusCode, type[RequestError]] = {
    grpc.StatusCode[cls.code.name]: cls for cls in ERROR_CLASSES
}


def translate(exc: grpc.RpcError) -> RequestError:
    """The MemoryGraph error for a failed call: its class by status, the server's message."""
    status = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    if status is grpc.StatusCode.FAILED_PRECONDITION and hasattr(exc, "trailing_metadata"):
        trailers: Any = exc.trailing_metadata() or ()  # blocking and asyncio calls alike
        texts = {str(key): str(value) for key, value in trailers}
        redirect = WrongOwner.from_trailers(details or status.name, texts)
        if redirect is not None:
            return redirect
    error = _ERRORS.get(status, RequestError)(details or status.name)
    error.code = Code[status.name]
    return error
