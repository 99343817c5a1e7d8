"""Delivering usage and session reports to the LLM-Registry, at least once, never in the way.

The event log is the outbox: every change's event is written in the same batch as the change, so
a report can never be lost between the graph and its delivery. The reporter follows the log from
a cursor kept in the store (`GraphStore.cursor`), turns the events the registry cares about into
reports (session registered, usage of each response, status changes), and advances the cursor
only after the registry accepted them. Writers never wait on it.

- Retries with exponential backoff (tenacity); a circuit breaker stops hammering a registry that
  is down and probes it again after a cool-down.
- Event retention never trims past the cursor, so an outage of any length loses nothing.
- Each report has a stable idempotency key, so a report delivered twice counts once.
- A report the registry refuses outright (HTTP 4xx other than 409/429) is logged, counted and
  skipped: retrying it could never succeed and would hold every later report back.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import Counter, Gauge
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from memorygraph.integrations.registry import RegistryClient, RegistryError
from memorygraph.model import (
    Event,
    EventType,
    NodeKind,
    ResponseDetails,
    SessionDetails,
    format_id,
)
from memorygraph.store import GraphStore

__all__ = ["CircuitBreaker", "RegistryReporter", "report_for"]

log = logging.getLogger("memorygraph.registry")

CURSOR = "registry"
# The outbox depth is counted by reading the log's keys: past this many it reads no further.
DEPTH_CAP = 10_000
OUTBOX_DEPTH = Gauge(
    "memorygraph_registry_outbox_depth",
    f"Committed events the registry reporter has not passed (counted up to {DEPTH_CAP})",
)
DELIVERIES = Counter(
    "memorygraph_registry_deliveries", "Reports the registry accepted, by kind", ["kind"]
)
FAILURES = Counter(
    "memorygraph_registry_failures",
    "Failed delivery attempts, by kind and whether the report was then dropped",
    ["kind", "dropped"],
)
BREAKER_STATE = Gauge(
    "memorygraph_registry_breaker_state", "Registry circuit breaker: 0 closed, 1 open, 2 half-open"
)


@dataclass(frozen=True)
class Report:
    kind: str  # session, usage, status
    key: str  # idempotency key
    send: Callable[[RegistryClient], Awaitable[None]]


_STATUS_EVENTS = {
    EventType.SESSION_CLOSED: "closed",
    EventType.SESSION_DELETED: "deleted",
    EventType.SESSION_ARCHIVED: "archived",
    EventType.SESSION_RESTORED: None,
}


def report_for(event: Event) -> Report | None:
    """The registry report an event calls for, if any."""
    node = event.node
    if node is None:
        return None
    if event.type is EventType.SESSION_CREATED:
        sid = format_id(node.id)
        session = node.details_as(SessionDetails)
        body = {
            "session_id": sid,
            "model": session.model,
            "user_id": session.user_id,
            "agent_id": session.agent_id,
            "title": node.content,
            "tags": sorted(node.metadata),
            "metadata": node.metadata,
            "created_at": node.create_time,
        }
        return Report(
            "session",
            f"{sid}:registered",
            lambda c: c.register_session(body, key=f"{sid}:registered"),
        )
    if event.type in _STATUS_EVENTS:
        sid = format_id(node.id)
        # A restored session is back in the state it was archived in.
        status = _STATUS_EVENTS[event.type] or node.details_as(SessionDetails).state.value
        # Archival and restore can happen more than once to a session: their keys carry the
        # event's sequence so that each is a report of its own.
        key = f"{sid}:{status}"
        if event.type.is_lifecycle:
            key += f":{event.sequence}"
        return Report("status", key, lambda c: c.update_status(sid, status, key=key))
    if event.type is EventType.NODE_CREATED and node.kind is NodeKind.RESPONSE:
        rid = format_id(node.id)
        response = node.details_as(ResponseDetails)
        usage = response.token_usage
        body = {
            "session_id": format_id(node.session_id) if node.session_id else "",
            "response_id": rid,
            "prompt_id": format_id(response.prompt_id) if response.prompt_id else "",
            "model": response.model,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "time": node.create_time,
        }
        return Report("usage", f"{rid}:usage", lambda c: c.report_usage(body, key=f"{rid}:usage"))
    return None


class CircuitBreaker:
    """Closed → open after `threshold` consecutive failures → half-open after `cooldown`
    seconds (one trial) → closed on success, open again on failure."""

    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.cooldown else "open"

    def allows(self) -> bool:
        return self.state != "open"

    def succeeded(self) -> None:
        self.failures, self.opened_at = 0, None

    def failed(self) -> None:
        self.failures += 1
        if self.state == "half-open" or self.failures >= self.threshold:
            self.opened_at = self.clock()


class RegistryReporter:
    def __init__(
        self,
        store: GraphStore,
        client: Callable[[], RegistryClient],
        *,
        breaker: CircuitBreaker | None = None,
        attempts: int = 3,
        backoff: float = 0.2,
        poll: float = 0.5,
    ) -> None:
        self.store = store
        self.make_client = client
        self.breaker = breaker or CircuitBreaker()
        self.attempts = attempts
        self.backoff = backoff
        self.poll = poll
        self.cursor = store.cursor(CURSOR)
        self.visible = store.events.last_sequence
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="registry-reporter", daemon=True)
        store.add_listener(self._on_visible)

    def _on_visible(self, sequence: int) -> None:
        self.visible = max(self.visible, sequence)
        self._wake.set()

    def _save_cursor(self, sequence: int) -> None:
        self.cursor = sequence
        self.store.save_cursor(CURSOR, sequence)

    async def _deliver(self, client: RegistryClient, report: Report) -> bool:
        """True once delivered; False to try again later (the cursor stays)."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff, max=self.backoff * 10),
            retry=retry_if_exception(lambda e: isinstance(e, RegistryError) and not e.permanent),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await report.send(client)
        except RegistryError as exc:
            FAILURES.labels(report.kind, str(exc.permanent).lower()).inc()
            if exc.permanent:
                log.error(
                    "registry refused %s report %s; skipping it: %s", report.kind, report.key, exc
                )
                return True
            log.warning("registry unreachable for %s report %s: %s", report.kind, report.key, exc)
            self.breaker.failed()
            return False
        self.breaker.succeeded()
        DELIVERIES.labels(report.kind).inc()
        return True

    async def run_once(self, client: RegistryClient) -> int:
        """Deliver what is pending, up to a stop; returns the reports delivered."""
        delivered = 0
        while self.cursor < self.visible and self.breaker.allows():
            events = self.store.events.read(self.cursor + 1, self.visible, 256)
            if not events:
                self._save_cursor(self.visible)
                break
            for event in events:
                report = report_for(event)
                if report is not None:
                    if not await self._deliver(client, report):
                        self._save_cursor(self.cursor)
                        return delivered
                    delivered += 1
                self.cursor = event.sequence
            # Persisted once per batch: after a crash at most one batch is delivered again,
            # and the idempotency keys make that harmless.
            self._save_cursor(self.cursor)
        return delivered

    def _main(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        client = self.make_client()
        try:
            while not self._stop.is_set():
                await self.run_once(client)
                OUTBOX_DEPTH.set(self.depth())
                BREAKER_STATE.set({"closed": 0, "open": 1, "half-open": 2}[self.breaker.state])
                await asyncio.to_thread(self._wake.wait, self.poll)
                self._wake.clear()
        finally:
            await client.close()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def wake(self) -> None:
        """Look for pending reports now rather than at the next poll."""
        self._wake.set()

    def depth(self) -> int:
        """How many events the reporter has still to look at, counted up to DEPTH_CAP."""
        return self.store.events.count_between(self.cursor + 1, self.visible, DEPTH_CAP)

    def floor(self) -> int:
        """The oldest event sequence still needed (retention keeps it)."""
        return self.cursor + 1
