"""Memory held by values, and byte budgets that several holders draw on together.

Buffers and queues that hold what clients sent (events waiting for a subscriber, after-hook
calls waiting for delivery, exports being restored) are bounded in bytes, not items: one item
may be a few bytes or many megabytes. `held_bytes` says about how much a value holds; a
`ByteBudget` is a bound in bytes shared by every holder given it.
"""

from __future__ import annotations

import sys
import threading

__all__ = ["ByteBudget", "held_bytes"]

# What a value that is neither text nor a container is counted as (an int, an enum member).
_SMALL = 16


def held_bytes(value: object) -> int:
    """About the memory `value` holds: texts and bytes in full, containers and dataclasses
    with everything they hold, anything else as a small object. Shared objects are counted
    wherever they appear, so the estimate errs high."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes | bytearray):
            total += sys.getsizeof(item)
        elif isinstance(item, dict):
            total += sys.getsizeof(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += sys.getsizeof(item)
            stack.extend(item)
        else:
            fields = getattr(type(item), "__dataclass_fields__", None)
            if fields is None:
                total += _SMALL
            else:
                total += sys.getsizeof(item)
                stack.extend(getattr(item, name) for name in fields)
    return total


class ByteBudget:
    """Bytes that holders take and give back; never more than `limit` taken at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        return self._held

    def take(self, size: int) -> bool:
        """Take `size` bytes if they fit beside what is held; False (nothing taken) if not."""
        with self._lock:
            if self._held + size > self.limit:
                return False
            self._held += size
            return True

    def give(self, size: int) -> None:
        """Give back `size` bytes taken before."""
        with self._lock:
            self._held -= size
