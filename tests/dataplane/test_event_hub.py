"""The event hub under concurrent writes, with subscribers coming and going."""

from __future__ import annotations

import threading

from memorygraph.events.hub import EventFilter, EventHub
from memorygraph.graph.service import GraphService
from memorygraph.model import NewSession
from memorygraph.store import GraphStore, MemoryStore


def _take(hub: EventHub, count: int, from_sequence: int = 0) -> list[int]:
    taken: list[int] = []
    events = hub.subscribe(EventFilter(), from_sequence, lambda: len(taken) < count)
    for event in events:
        taken.append(event.sequence)
        if len(taken) == count:
            events.close()
    return taken


def test_live_subscribers_joining_between_writes_see_every_event_in_order() -> None:
    store = GraphStore(MemoryStore())
    service = GraphService(store)
    hub = EventHub(store)
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            service.create_session(NewSession())  # one event each

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(30):  # between these, writes go on with nobody subscribed
            seen = _take(hub, 20)
            assert seen == [e.sequence for e in store.events.read(seen[0], seen[-1], 100)]
        replayed = _take(hub, 300, from_sequence=1)
        assert replayed == [e.sequence for e in store.events.read(1, 2**63, 300)]
    finally:
        stop.set()
        thread.join()
        hub.close()
