"""Fan-out of committed events to subscribers, each with a buffer bounded in events and bytes.

The event log itself lives in the store (written in the same batch as each change). The hub
reads newly visible events once, in one thread, and hands each subscriber the ones its filter
wants. A subscriber whose buffer fills up (in number of events or in bytes, `held_bytes`) is
dropped from the fan-out; it still delivers what it has buffered, then ends with
RESOURCE_EXHAUSTED naming the sequence to resume from. Resuming replays from the log, so a
resumed stream has no gap and no duplicate. (A subscriber whose client reads nothing at all is
ended by the servicers' write timeout, which frees its buffer.)
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass

from memorygraph.errors import OutOfRange, ResourceExhausted, Unavailable
from memorygraph.model import Event, EventType
from memorygraph.sizes import held_bytes
from memorygraph.store import GraphStore

__all__ = ["EventFilter", "EventHub"]

log = logging.getLogger("memorygraph.events")

# Events read from the log at once, for the fan-out and for each replay: so many, and no more
# once their records reach so many bytes.
READ_CHUNK = 512
READ_CHUNK_BYTES = 4 << 20
POLL_SECONDS = 0.25
# How often a subscriber that asked for watermarks gets one while it has no event to take.
WATERMARK_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class Watermark:
    """No event at or below `sequence` is still to come (see `EventHub.subscribe`)."""

    sequence: int


@dataclass(frozen=True, slots=True)
class EventFilter:
    session_id: bytes | None = None
    types: frozenset[EventType] = frozenset()

    def matches(self, event: Event) -> bool:
        return (self.session_id is None or event.session_id == self.session_id) and (
            not self.types or event.type in self.types
        )


class _Subscriber:
    def __init__(self, event_filter: EventFilter, capacity: int, capacity_bytes: int) -> None:
        self.filter = event_filter
        self.capacity = capacity
        self.capacity_bytes = capacity_bytes
        self.buffer: deque[tuple[Event, int]] = deque()  # events with their sizes
        self.bytes = 0
        self.overflowed = False
        self.ended: str | None = None  # why the hub ends it (see `EventHub.end_all`)
        self.cond = threading.Condition()

    def offer(self, event: Event, size: int) -> bool:
        """Buffer `event` (`size` bytes); False (and marked overflowed) when it does not fit.
        An empty buffer takes any one event, however large."""
        with self.cond:
            if self.buffer and (
                len(self.buffer) >= self.capacity or self.bytes + size > self.capacity_bytes
            ):
                self.overflowed = True
                self.cond.notify_all()
                return False
            self.buffer.append((event, size))
            self.bytes += size
            self.cond.notify_all()
            return True

    def take(self) -> Event | None:
        """The oldest buffered event, if any (call holding `cond`)."""
        if not self.buffer:
            return None
        event, size = self.buffer.popleft()
        self.bytes -= size
        return event


def _check_ended(subscriber: _Subscriber, next_sequence: int) -> None:
    if subscriber.ended is not None:
        raise Unavailable(f"{subscriber.ended}; resume with from_sequence={next_sequence}")


class EventHub:
    def __init__(
        self, store: GraphStore, *, buffer_size: int = 1024, buffer_bytes: int = 8 << 20
    ) -> None:
        self.store = store
        self.buffer_size = buffer_size
        self.buffer_bytes = buffer_bytes
        self._cond = threading.Condition()
        self._visible = store.events.last_sequence  # newest sequence readers may see
        self._published = store.events.last_sequence  # newest sequence fanned out
        self._subscribers: set[_Subscriber] = set()  # those the fan-out hands events to
        self._open: set[_Subscriber] = set()  # every open one, fallen behind or not
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="event-hub", daemon=True)
        self._thread.start()
        store.add_listener(self.on_visible)

    @property
    def subscriber_count(self) -> int:
        return len(self._open)

    def lag(self) -> int:
        """Events visible but not yet fanned out."""
        return self._visible - self._published

    def buffered(self) -> list[int]:
        """Events waiting in each subscriber's buffer."""
        return [len(s.buffer) for s in list(self._open)]

    def buffered_bytes(self) -> list[int]:
        """Bytes of the events waiting in each subscriber's buffer."""
        return [s.bytes for s in list(self._open)]

    def on_visible(self, sequence: int) -> None:
        with self._cond:
            if sequence <= self._visible:
                return
            if not self._subscribers and self._published == self._visible:
                # Nobody to hand events to and nothing in hand: publish without waking the
                # fan-out thread (a hand-over between threads on every write otherwise).
                self._visible = self._published = sequence
            else:
                self._visible = sequence
                self._cond.notify_all()

    def end_all(self, reason: str) -> None:
        """End every open subscription once it has delivered what it holds, with UNAVAILABLE
        naming `reason` and the sequence to resume from (the shards this worker owns changed:
        a resumed stream reads the log as it is now, with no gap and no duplicate)."""
        with self._cond:
            for subscriber in list(self._open):
                with subscriber.cond:
                    subscriber.ended = reason
                    subscriber.cond.notify_all()

    def skip_to(self, sequence: int) -> None:
        """Take the log as handed out up to `sequence` without handing out what it holds up
        to there that came from elsewhere (a shard's events moved here, which subscribers had
        live from the shard's old owner); what this worker's own writes made visible before is
        handed out first."""
        with self._cond:
            while self._published < self._visible and not self._closing:
                self._cond.wait(0.05)
            if sequence > self._published:
                self._visible = self._published = sequence

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._visible == self._published and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                first, last = self._published + 1, self._visible
                if not self._subscribers:
                    self._published = last
                    continue
            events = self.store.events.read(first, last, READ_CHUNK, READ_CHUNK_BYTES)
            sizes = [held_bytes(event) for event in events]
            with self._cond:
                for subscriber in list(self._subscribers):
                    for event, size in zip(events, sizes, strict=True):
                        if subscriber.filter.matches(event) and not subscriber.offer(event, size):
                            self._subscribers.discard(subscriber)
                            break
                # Events trimmed before they were read are skipped, not waited for.
                self._published = events[-1].sequence if events else last

    def subscribe(
        self,
        event_filter: EventFilter,
        from_sequence: int,
        is_active: Callable[[], bool],
    ) -> Iterator[Event]:
        """Retained events from `from_sequence` (0: from now on), then live ones, until
        `is_active()` turns false or the hub closes."""
        for event in self.subscribe_marked(event_filter, from_sequence, is_active, None):
            assert isinstance(event, Event)
            yield event

    def subscribe_marked(
        self,
        event_filter: EventFilter,
        from_sequence: int,
        is_active: Callable[[], bool],
        idle: Callable[[], int | None] | None,
    ) -> Iterator[Event | Watermark]:
        """`subscribe`, and with `idle`, a live subscriber that has nothing to take is also
        handed, every WATERMARK_SECONDS, a `Watermark`: a sequence no event still to come
        will be at or below (see `watermark`). `idle()` is the writers' part of it."""
        subscriber = _Subscriber(event_filter, self.buffer_size, self.buffer_bytes)
        with self._cond:
            self._subscribers.add(subscriber)
            self._open.add(subscriber)
            live_from = self._published + 1
        try:
            next_sequence: int | None = from_sequence or live_from
            if next_sequence is not None and next_sequence < live_from:
                next_sequence = yield from self._replay(
                    event_filter, next_sequence, live_from, is_active, subscriber
                )
            if next_sequence is not None:
                yield from self._live(subscriber, next_sequence, is_active, idle)
        finally:
            with self._cond:
                self._subscribers.discard(subscriber)
                self._open.discard(subscriber)

    def _replay(
        self,
        event_filter: EventFilter,
        next_sequence: int,
        live_from: int,
        is_active: Callable[[], bool],
        subscriber: _Subscriber,
    ) -> Generator[Event, None, int | None]:
        """Retained events from `next_sequence` up to where live delivery starts; returns the
        sequence to go on from, None when the caller went away."""
        log = self.store.events
        # Retention removes events below a floor; archival erases a session's events anywhere
        # in the log. Only the first makes a replay incomplete.
        if next_sequence < log.floor():
            raise OutOfRange(
                f"from_sequence {next_sequence} is no longer retained; the oldest "
                f"retained event is {log.oldest_sequence()}"
            )
        while next_sequence < live_from:
            _check_ended(subscriber, next_sequence)
            events = log.read(next_sequence, live_from - 1, READ_CHUNK, READ_CHUNK_BYTES)
            _check_ended(subscriber, next_sequence)  # a chunk read across the change is dropped
            starts_here = bool(events) and events[0].sequence == next_sequence
            if not starts_here and next_sequence < log.floor():
                raise OutOfRange(
                    f"events from {next_sequence} were removed by retention while "
                    "being replayed; resume from a newer sequence"
                )
            if not events:
                break
            for event in events:
                next_sequence = event.sequence + 1
                if event_filter.matches(event):
                    yield event
            if not is_active():
                return None
        return next_sequence

    def _live(
        self,
        subscriber: _Subscriber,
        next_sequence: int,
        is_active: Callable[[], bool],
        idle: Callable[[], int | None] | None,
    ) -> Iterator[Event | Watermark]:
        """Events as the fan-out hands them to `subscriber`, from `next_sequence` on."""
        poll = POLL_SECONDS if idle is None else WATERMARK_SECONDS
        while True:
            with subscriber.cond:
                if not subscriber.buffer:
                    _check_ended(subscriber, next_sequence)
                    if subscriber.overflowed:
                        raise ResourceExhausted(
                            f"subscriber fell behind: its buffer ({self.buffer_size} events, "
                            f"{self.buffer_bytes} bytes) filled up; resume with "
                            f"from_sequence={next_sequence}"
                        )
                    subscriber.cond.wait(poll)
                waiting = subscriber.take()
            if waiting is None:
                if self._closing or not is_active():
                    return
                if idle is not None and (mark := self.watermark(idle)) is not None:
                    with subscriber.cond:
                        empty = not subscriber.buffer
                    if empty:  # an event published meanwhile goes first
                        yield Watermark(mark)
                continue
            if waiting.sequence < next_sequence:
                continue
            next_sequence = waiting.sequence + 1
            yield waiting

    def watermark(self, idle: Callable[[], int | None]) -> int | None:
        """A sequence no event still to be published will be at or below, or None while a
        write is under way or published events are not handed out yet. `idle()` gives, while
        no write is under way, the highest sequence below every one a write starting later
        can make (from the writers' clock)."""
        bound = idle()  # first: a write after it numbers its events above it
        if bound is None:
            return None
        with self._cond:
            published = self._published
        if published != self.store.events.last_sequence:
            return None
        return max(published, bound)

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
