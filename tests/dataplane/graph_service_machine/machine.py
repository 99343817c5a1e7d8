"""The state machine's state and the helpers its rules share."""

from __future__ import annotations

import copy
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine
from memorygraph.errors import RequestError
from memorygraph.graph.service import GraphService
from memorygraph.model import NodeKind
from memorygraph.store import GraphStore, KeyValueStore, MemoryStore
from memorygraph.store.rocks import RocksStore

from ..reference_graph import ReferenceGraph, Refused

T = TypeVar("T")
T0 = 1_750_000_000_000_000
UNKNOWN_ID = uuid.UUID("0190aaaa-0000-7000-8000-000000000000").bytes
EXPLICIT_IDS = [uuid.UUID(int=(0x0180 << 112) | (0x7 << 76) | i).bytes for i in range(1, 5)]


class FakeClock:
    """Microseconds that advance by one on every reading: predictable and strictly increasing."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        self.now += 1
        return self.now


@dataclass
class Outcome(Generic[T]):
    """What the service did with one request: a value or a refusal."""

    value: T | None = None
    error: Exception | None = None

    @property
    def got(self) -> T | None:
        return self.value if self.error is None else None


def _call(fn: Callable[[], T]) -> Outcome[T]:
    try:
        return Outcome(value=fn())
    except RequestError as exc:
        return Outcome(error=exc)


class MachineBase(RuleBasedStateMachine):
    """The state every rule works on, and the helpers the rules share."""

    def __init__(self, engine: str, workdir: Path) -> None:
        super().__init__()
        self.engine = engine
        self.dir = Path(tempfile.mkdtemp(dir=workdir))
        self.clock = FakeClock()
        self.store = self._open()
        self.service = GraphService(self.store, clock=self.clock)
        self.model = ReferenceGraph(now=self.clock.now)
        self.gone: list[bytes] = []  # ids of deleted nodes, to aim requests at

    def _open(self) -> GraphStore:
        kv: KeyValueStore = RocksStore(self.dir / "db") if self.engine == "rocks" else MemoryStore()
        return GraphStore(kv)

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------------------------

    def _apply(
        self, what: str, outcome: Outcome[T], change: Callable[[ReferenceGraph], Any]
    ) -> Any:
        """Apply `change` to a copy of the model; keep it only if the service agreed."""
        trial = copy.deepcopy(self.model)
        trial.now = self.clock.now
        try:
            expected = change(trial)
        except Refused as refused:
            event(f"{what}: {refused.error.__name__}")
            assert outcome.error is not None, (
                f"the service accepted what the model refuses ({refused}): {outcome.value!r}"
            )
            assert type(outcome.error) is refused.error, (
                f"expected {refused}, the service raised {outcome.error!r}"
            )
            return None
        if outcome.error is not None:
            raise AssertionError(f"the service refused a valid request: {outcome.error!r}")
        event(f"{what}: ok")
        before = set(self.model.nodes)
        self.model = trial
        self.gone += [nid for nid in before if nid not in trial.nodes]
        return expected

    def _pick(self, data: st.DataObject, *kinds: NodeKind) -> bytes:
        """Mostly an existing node of `kinds`; sometimes any node, a deleted one or an unknown."""
        nodes = self.model.nodes
        matching = [nid for nid, n in nodes.items() if not kinds or n.kind in kinds]
        roll = data.draw(st.integers(0, 19))
        pool: list[bytes]
        if matching and roll < 16:
            pool = matching
        elif nodes and roll < 18:
            pool = list(nodes)
        elif self.gone and roll < 19:
            pool = self.gone
        else:
            return data.draw(st.sampled_from([UNKNOWN_ID, *EXPLICIT_IDS]))
        return pool[data.draw(st.integers(0, len(pool) - 1))]

    def _maybe(self, data: st.DataObject, *kinds: NodeKind, chance: int = 4) -> bytes | None:
        """None, or (one time in `chance`) a picked node."""
        return self._pick(data, *kinds) if data.draw(st.integers(1, chance)) == 1 else None

    def _explicit_id(self, data: st.DataObject) -> bytes | None:
        choice = data.draw(st.integers(0, 11))
        if choice < 9:
            return None
        if choice < 9 or not self.model.nodes:
            return data.draw(st.sampled_from(EXPLICIT_IDS))
        return self._pick(data)

    def _times(self) -> list[int]:
        created = (n.create_time for n in self.model.nodes.values())
        return sorted({0, T0, self.clock.now + 1, *created})
