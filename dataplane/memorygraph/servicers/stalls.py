"""Ending streams whose client stopped reading.

gRPC's threaded server sends a stream's messages from the thread that runs the call, and a send
blocks while the client takes nothing (HTTP/2 flow control): a subscriber that never reads
would hold its thread, its stream slot and everything its call buffered for as long as it stays
connected. Each message of a watched stream is marked as it is handed to gRPC and unmarked when
gRPC asks for the next one, which it does once the message is sent; a thread checks the marks
and ends every call whose send has been waiting longer than the write timeout, with
RESOURCE_EXHAUSTED and a message saying why. The blocked send then returns, the call's
generator is closed, and its thread, slot and buffers are freed.

The watching thread runs only while some stream is watched.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from memorygraph.metrics import definitions as metrics

__all__ = ["StalledStreams"]

log = logging.getLogger("memorygraph.rpc")

T = TypeVar("T")


@dataclass(slots=True)
class _Send:
    since: float
    method: str
    context: grpc.ServicerContext
    hint: str


def _end(context: grpc.ServicerContext, message: str) -> None:
    """End the call with RESOURCE_EXHAUSTED and `message`, although a send of its is blocked.

    The servicer context offers only `cancel()` for this, and the client then reads CANCELLED,
    which tells it nothing; the call object under the context can be cancelled with a status
    (trailing metadata, which flow control does not hold back). Not part of gRPC's public API:
    should it ever be missing, the call is still ended, as CANCELLED."""
    call: Any = getattr(getattr(context, "_rpc_event", None), "call", None)
    try:
        call.cancel(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message)
    except Exception:  # no such call object, or it changed shape
        context.cancel()


class StalledStreams:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.period = min(1.0, timeout / 4)
        # Sends under way, by stream (set and cleared without the lock: single dict operations).
        self._sending: dict[int, _Send] = {}
        self._keys = itertools.count()
        self._lock = threading.Lock()
        self._streams = 0
        self._watching = False

    def watched(
        self, method: str, context: grpc.ServicerContext, responses: Iterator[T], hint: str = ""
    ) -> Iterator[T]:
        """`responses`, each one's send watched; `hint` ends the status message of a stream
        ended for not reading."""
        key = next(self._keys)
        with self._lock:
            self._streams += 1
            if not self._watching:
                self._watching = True
                threading.Thread(target=self._watch, name="stalled-streams", daemon=True).start()
        try:
            for response in responses:
                self._sending[key] = _Send(time.monotonic(), method, context, hint)
                yield response  # gRPC asks for the next response once this one is sent
                self._sending.pop(key, None)
        finally:
            self._sending.pop(key, None)
            with self._lock:
                self._streams -= 1
            close = getattr(responses, "close", None)
            if close is not None:  # the call's own clean-up, now rather than when collected
                close()

    def _watch(self) -> None:
        while True:
            time.sleep(self.period)
            with self._lock:
                if not self._streams:
                    self._watching = False
                    return
            now = time.monotonic()
            for key, send in self._sending.copy().items():
                if now - send.since >= self.timeout and self._sending.get(key) is send:
                    self._sending.pop(key, None)
                    self._end(send)

    def _end(self, send: _Send) -> None:
        metrics.STALLED_STREAMS.labels(send.method).inc()
        log.info(
            "%s: the client took no message for %gs; ending the stream",
            send.method,
            self.timeout,
        )
        message = f"the client took no message for {self.timeout:g}s: the stream was ended"
        _end(send.context, f"{message}; {send.hint}" if send.hint else message)
