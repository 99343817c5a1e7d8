"""Per-request deadlines that long-running work checks, so cancelled work stops.

The handler wrapper (`servicers.handlers`) registers the current RPC (its call context, and the
server's default deadline for calls that came without one); loops over many records call
`check()` now and then. The deadline is worked out when checked, not when the call starts: most
calls never check.
"""

from __future__ import annotations

import contextvars
import time
from contextvars import ContextVar
from typing import Protocol

from memorygraph.errors import Cancelled, DeadlineExceeded

__all__ = ["Call", "Token", "check", "remaining", "reset", "start"]

# gRPC reports "no deadline" as one in the distant future; anything beyond this is none.
NO_DEADLINE = 10**8  # seconds


class Call(Protocol):
    """What `check` needs of an RPC (a grpc.ServicerContext has both)."""

    def time_remaining(self) -> float | None: ...

    def is_active(self) -> bool: ...


# The current RPC, and until when (time.perf_counter) it may run if the client set no deadline.
_Current = tuple[Call, float | None]
_current: ContextVar[_Current | None] = ContextVar("memorygraph_call", default=None)
Token = contextvars.Token[_Current | None]


def start(call: Call, default_until: float | None) -> Token:
    """Make `call` the current RPC; `default_until` (a time.perf_counter value, None for no
    limit) applies when the client sent no deadline. Returns the token for `reset`."""
    return _current.set((call, default_until))


def reset(token: Token) -> None:
    _current.reset(token)


def check() -> None:
    """Raise when the current RPC's deadline has passed or its client went away."""
    current = _current.get()
    if current is None:
        return
    call, default_until = current
    remaining = call.time_remaining()
    if remaining is not None and remaining < NO_DEADLINE:
        expired = remaining <= 0
    else:
        expired = default_until is not None and time.perf_counter() > default_until
    if expired:
        raise DeadlineExceeded("the deadline passed before the work finished; nothing was kept")
    if not call.is_active():
        raise Cancelled("the call was cancelled")


def remaining() -> float | None:
    """Seconds the current RPC has left (its client's deadline, else the server's default;
    None: no limit), for the calls it makes to others."""
    current = _current.get()
    if current is None:
        return None
    call, default_until = current
    left = call.time_remaining()
    if left is not None and left < NO_DEADLINE:
        return max(left, 0.0)
    return None if default_until is None else max(default_until - time.perf_counter(), 0.0)
