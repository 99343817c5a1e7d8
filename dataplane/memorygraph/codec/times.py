"""Times: microseconds since the Unix epoch in the domain, `Timestamp` on the wire."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from memorygraph.errors import InvalidArgument

__all__ = ["micros", "request_micros", "set_timestamp", "timestamp"]


def timestamp(value: int) -> Timestamp:
    return Timestamp(seconds=value // 1_000_000, nanos=(value % 1_000_000) * 1000)


def set_timestamp(field: Timestamp, value: int) -> None:
    """Set a message's timestamp field in place (cheaper than building one and copying it)."""
    seconds, rest = divmod(value, 1_000_000)
    field.seconds = seconds
    field.nanos = rest * 1000


def micros(ts: Timestamp) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def request_micros(ts: Timestamp, default: int) -> int:
    """A time a request gives: `default` when unset; times before 1970 are refused."""
    if ts.seconds == 0 and ts.nanos == 0:
        return default
    if ts.seconds < 0:
        raise InvalidArgument("times before 1970 are not supported")
    return micros(ts)
