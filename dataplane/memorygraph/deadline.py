"""Per-request deadlines that long-running work checks, so cancelled work stops.

The interceptor sets the deadline of the current RPC (the client's, or the server default for
calls without one) and whether the client is still there; loops over many records call
`check()` now and then.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar, Token

from memorygraph.errors import Cancelled, DeadlineExceeded

__all__ = ["check", "reset", "set_deadline"]

_deadline: ContextVar[float | None] = ContextVar("memorygraph_deadline", default=None)
_active: ContextVar[Callable[[], bool] | None] = ContextVar("memorygraph_active", default=None)


Tokens = tuple[Token[float | None], Token[Callable[[], bool] | None]]


def set_deadline(seconds: float | None, is_active: Callable[[], bool] | None) -> Tokens:
    """Start the clock for the current RPC; returns the tokens for `reset`."""
    when = time.monotonic() + seconds if seconds is not None else None
    return (_deadline.set(when), _active.set(is_active))


def reset(tokens: Tokens) -> None:
    _deadline.reset(tokens[0])
    _active.reset(tokens[1])


def check() -> None:
    """Raise when the current RPC's deadline has passed or its client went away."""
    when = _deadline.get()
    if when is not None and time.monotonic() > when:
        raise DeadlineExceeded("the deadline passed before the work finished; nothing was kept")
    is_active = _active.get()
    if is_active is not None and not is_active():
        raise Cancelled("the call was cancelled")
