"""Time-ordered ids (UUIDv7) and their parsing.

A UUIDv7 starts with a 48-bit Unix millisecond timestamp, so ids sort by creation time both as
text and as the 16 raw bytes used in storage keys. Within one millisecond this generator
increments a 12-bit counter (RFC 9562, method 1) so ids made by one process are strictly
increasing.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid

from memorygraph.errors import InvalidArgument

__all__ = ["format_id", "new_id", "parse_id"]

_lock = threading.Lock()
_last_ms = 0
_counter = 0
# Random bits are drawn from the OS a few KiB at a time rather than with a system call per id.
_RANDOM_CHUNK = 4096
_random = b""
_random_at = 0


def _forget_random() -> None:
    global _random, _random_at
    _random, _random_at = b"", 0


os.register_at_fork(after_in_child=_forget_random)  # a child must not reuse the parent's bits


def new_id() -> bytes:
    """A new UUIDv7 as 16 bytes, greater than every id this process made before."""
    global _last_ms, _counter, _random, _random_at
    with _lock:
        if _random_at + 10 > len(_random):
            _random, _random_at = os.urandom(_RANDOM_CHUNK), 0
        bits = int.from_bytes(_random[_random_at : _random_at + 10])
        _random_at += 10
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms, _counter = ms, bits & 0x3FF
        else:
            # Same millisecond (or the clock stepped back): keep counting from the last id.
            _counter += 1
            if _counter > 0xFFF:
                _last_ms, _counter = _last_ms + 1, 0
            ms = _last_ms
        counter = _counter
    rand = (bits >> 16) & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand
    return value.to_bytes(16)


def format_id(raw: bytes) -> str:
    """Canonical text form of a 16-byte id (what str(uuid.UUID(bytes=raw)) gives, faster)."""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def parse_id(text: str, field: str) -> bytes:
    """The 16 bytes of a UUID given as text; `InvalidArgument` naming `field` when it is not one."""
    if not text:
        raise InvalidArgument(f"{field} is required")
    if _CANONICAL.fullmatch(text):  # the common case, without building a UUID object
        return bytes.fromhex(text.replace("-", ""))
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        raise InvalidArgument(
            f"{field} {text[:64]!r} is not a valid id: expected a UUID such as "
            "'0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b'"
        ) from None
    return parsed.bytes
