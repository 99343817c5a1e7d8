"""Logging set-up: text or JSON lines, each carrying the request id of the RPC it belongs to."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any

__all__ = [
    "LazyRequestId",
    "RateLimitedLog",
    "RequestIdToken",
    "current_request_id",
    "request_id_var",
    "setup_logging",
]


class LazyRequestId:
    """A call's request id, worked out by `find` the first time something asks for it (a log
    line, a failed call's trailers): most calls never do, and reading the caller's metadata
    for it on every call costs more than the rest of the bookkeeping of a call together."""

    __slots__ = ("_args", "_find", "_value")

    def __init__(self, find: Callable[..., str], *args: Any) -> None:
        """The id is `find(*args)` (no closure made per call)."""
        self._find = find
        self._args = args
        self._value: str | None = None

    def __str__(self) -> str:
        if self._value is None:
            self._value = self._find(*self._args)
        return self._value


request_id_var: ContextVar[str | LazyRequestId] = ContextVar("memorygraph_request_id", default="-")
RequestIdToken = Token[str | LazyRequestId]


def current_request_id() -> str:
    """The request id of the RPC being handled ("-" outside one)."""
    return str(request_id_var.get())


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class RateLimitedLog:
    """A log line that anyone can make happen (bad input from callers) at most once an
    `interval`; the next line says how many were left out meanwhile."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._next = 0.0
        self._suppressed = 0

    def info(self, message: str, *args: object) -> None:
        with self._lock:
            now = self.clock()
            if now < self._next:
                self._suppressed += 1
                return
            suppressed, self._suppressed = self._suppressed, 0
            self._next = now + self.interval
        if suppressed:
            message += f" ({suppressed} more like it in the last {self.interval:.0f}s not logged)"
        self.logger.info(message, *args)
