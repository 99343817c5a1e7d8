"""Time-ordered ids that carry a shard tag, and their parsing.

Ids the server makes are UUIDv8 (RFC 9562's layout for ids of one's own design), big-endian:

    bits 127-80  Unix time in milliseconds (48 bits)
    bits  79-76  version, 8
    bits  75-64  a counter within the millisecond (12 bits, RFC 9562 method 1)
    bits  63-62  variant, 0b10
    bits  61-48  random (14 bits)
    bits  47-32  the shard tag (16 bits: bytes 10 and 11)
    bits  31-0   random (32 bits)

So ids sort by creation time both as text and as the 16 raw bytes used in storage keys, and ids
made by one process are strictly increasing. The shard tag groups a session with everything in
it: the nodes of a session carry the session's tag.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import uuid

from memorygraph.errors import InvalidArgument

__all__ = ["TAG_BITS", "format_id", "id_tag", "name_tag", "new_id", "parse_id"]

TAG_BITS = 16
_TAG_SHIFT = 32
_TAG_MASK = ((1 << TAG_BITS) - 1) << _TAG_SHIFT

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


def new_id(tag: int | None = None) -> bytes:
    """A new id as 16 bytes, greater than every id this process made before, carrying shard
    tag `tag` (random when None: the id starts a tag of its own)."""
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
    value = (ms << 80) | (0x8 << 76) | (counter << 64) | (0b10 << 62) | rand
    if tag is not None:
        value = (value & ~_TAG_MASK) | (tag << _TAG_SHIFT)
    return value.to_bytes(16)


def id_tag(raw: bytes) -> int:
    """The shard tag of an id: the one it carries when it is a UUIDv8 with the RFC variant
    (whoever made it); otherwise (an id a caller chose, or one made before ids carried tags)
    the first two bytes, big-endian, of the SHA-256 digest of its 16 bytes."""
    if raw[6] >> 4 == 0x8 and raw[8] >> 6 == 0b10:
        return (raw[10] << 8) | raw[11]
    return _hashed_tag(raw)


def name_tag(name: str) -> int:
    """The shard tag of the template named `name`: the first two bytes, big-endian, of the
    SHA-256 digest of the name in UTF-8. A template found by its name and one found by its id
    are then found in the same place."""
    return _hashed_tag(name.encode())


def _hashed_tag(data: bytes) -> int:
    """The tag of anything that does not carry one: the start of its SHA-256 digest."""
    return int.from_bytes(hashlib.sha256(data).digest()[: TAG_BITS // 8])


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
