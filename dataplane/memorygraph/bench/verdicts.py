"""What the runs mean: each check is a ratio of MemoryGraph to a baseline measured in the same
run, held against its target; each reference point is a ratio of a doctored echo server to plain
echo, shown beside the checks and held against nothing. Ratios and rates are medians over runs.

Targets and reference points are defined here; measuring, printing and writing them are not.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

from memorygraph.bench.load import Result

__all__ = [
    "REFERENCES",
    "TARGETS",
    "WORK_REFERENCES_US",
    "Check",
    "Reference",
    "Runs",
    "checks",
    "references",
]

# Echo servers whose AddPrompt spends this many microseconds of Python CPU first, measured beside
# echo at 32 in flight: what a handler's own work costs in this server flavour. The first is the
# baseline of AddPrompt at 32 in flight (a server doing its own work in 100 µs of Python), the
# others are reference points. Beside them, an echo server that syncs each AddPrompt to a file
# before answering, at 1 in flight, writing over a file written out beforehand (as a reused log
# file is): the least any server that answers only once a write is on this disk can take, the
# baseline of the durable 1-in-flight latency.
WORK_REFERENCES_US = (100, 240)


@dataclass
class Reference:
    name: str
    ratio: float
    detail: str


@dataclass
class Check:
    name: str
    ratio: float
    target: float
    higher_is_better: bool
    detail: str

    @property
    def met(self) -> bool:
        return self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target


Runs = list[dict[str, Result]]


def _throughput(result: Result) -> float:
    return result.throughput


def _p50(result: Result) -> float:
    return result.p50


def _median(runs: Runs, key: str, metric: Callable[[Result], float]) -> float:
    return statistics.median(metric(run[key]) for run in runs)


def _ratio(runs: Runs, subject: str, baseline: str, metric: Callable[[Result], float]) -> float:
    """The median of the runs' own ratios: both sides of one are measured back to back."""
    return statistics.median(metric(run[subject]) / metric(run[baseline]) for run in runs)


@dataclass(frozen=True)
class _Comparison:
    """`subject` against `baseline` of the same runs, by p50 latency (lower is better) or by
    throughput (higher is better)."""

    name: str
    subject: str
    baseline: str
    latency: bool = False
    target: float = 0.0  # none for a reference point

    def measured_in(self, runs: Runs) -> bool:
        return all(self.subject in run and self.baseline in run for run in runs)

    def ratio(self, runs: Runs) -> float:
        return _ratio(runs, self.subject, self.baseline, _p50 if self.latency else _throughput)

    def detail(self, runs: Runs, *, baseline: bool = True) -> str:
        """The medians behind the ratio: the subject's, and the baseline's."""
        keys = [self.subject, self.baseline] if baseline else [self.subject]
        if self.latency:
            return " vs ".join(f"{_median(runs, k, _p50) * 1e3:.2f} ms" for k in keys)
        return " vs ".join(f"{_median(runs, k, _throughput):.0f}/s" for k in keys)


TARGETS = (
    _Comparison(
        "AddPrompt, 32 in flight: throughput vs echo + 100 us of Python",
        "mg.add_prompt.32",
        "echo_work100.add_prompt.32",
        target=1.0,
    ),
    _Comparison(
        "AddPrompt, 1 in flight: p50 latency vs echo + fdatasync into a reused file",
        "mg.add_prompt.1",
        "echo_sync_reused.add_prompt.1",
        latency=True,
        target=1.3,
    ),
    _Comparison(
        "GetNode, 32 in flight: throughput vs echo",
        "mg.get_node.32",
        "echo.get_node.32",
        target=0.90,
    ),
    _Comparison(
        "StreamQuery 10k nodes, batched: nodes/s vs echo stream",
        "mg.stream_query",
        "echo.stream_query",
        target=0.80,
    ),
    _Comparison(
        "validator + redactor vs no plugins, AddPrompt 32 in flight",
        "mg_plugins.add_prompt.32",
        "mg.add_prompt.32",
        target=0.85,
    ),
    _Comparison(
        "durable vs fast, AddPrompt 32 in flight",
        "mg.add_prompt.32",
        "mg_fast.add_prompt.32",
        target=0.70,
    ),
    _Comparison(
        "ListSessions first page of 10k sessions, 64 shards vs 1: p50",
        "mg_shards64.list_sessions",
        "mg_shards1.list_sessions",
        latency=True,
        target=3.0,
    ),
    _Comparison(
        "2 workers vs 1, AddPrompt 64 in flight sent to each session's worker",
        "mg_workers2.add_prompt_routed.64",
        "mg.add_prompt_routed.64",
        target=1.3,
    ),
    _Comparison(
        "GetNode forwarded to the owning worker vs answered directly: p50",
        "mg_workers2.get_node_forwarded.1",
        "mg_workers2.get_node_direct.1",
        latency=True,
        target=1.5,
    ),
    _Comparison(
        "2 workers vs PostgreSQL (the node and its two edges, 64 connections)",
        "mg_workers2.add_prompt_routed.64",
        "pg.add_prompt.64",
        target=1.0,
    ),
    _Comparison(
        "Turns via Ingest vs PostgreSQL batches (turns/s)", "mg.ingest", "pg.ingest", target=1.5
    ),
    _Comparison(
        "One turn (RecordTurn) p50 vs PostgreSQL's two commits",
        "mg.single_turn",
        "pg.single_turn",
        latency=True,
        target=1.5,
    ),
)

REFERENCES = (
    *(
        _Comparison(
            f"echo + {us} us of Python CPU per AddPrompt, 32 in flight: throughput",
            f"echo_work{us}.add_prompt.32",
            "echo.add_prompt.32",
        )
        for us in WORK_REFERENCES_US
    ),
    _Comparison(
        "echo + an fdatasync per AddPrompt, 1 in flight: p50 latency",
        "echo_sync.add_prompt.1",
        "echo.add_prompt.1",
        latency=True,
    ),
    _Comparison(
        "the same fdatasync into a reused file vs appended, 1 in flight: p50 latency",
        "echo_sync_reused.add_prompt.1",
        "echo_sync.add_prompt.1",
        latency=True,
    ),
    _Comparison(
        "one turn as AddPrompt + AddResponse vs RecordTurn: p50 latency",
        "mg.two_call_turn",
        "mg.single_turn",
        latency=True,
    ),
)


def checks(runs: Runs) -> list[Check]:
    """Each target measured in every run (a run without PostgreSQL, or of some groups only,
    has fewer): the median of the runs' own ratios (both sides of one ratio are measured back
    to back in a run), with the median rates beside it."""
    return [
        Check(t.name, t.ratio(runs), t.target, not t.latency, t.detail(runs))
        for t in TARGETS
        if t.measured_in(runs)
    ]


def references(runs: Runs) -> list[Reference]:
    """Echo with a handler's worth of CPU per call vs plain echo (AddPrompt throughput, 32 in
    flight), echo with a synced write per call vs plain echo (AddPrompt p50, 1 in flight), and
    a turn recorded with two calls vs one: those measured in every run."""
    return [
        Reference(r.name, r.ratio(runs), r.detail(runs, baseline=False))
        for r in REFERENCES
        if r.measured_in(runs)
    ]
