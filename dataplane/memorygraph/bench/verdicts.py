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

__all__ = ["WORK_REFERENCES_US", "Check", "Reference", "Runs", "checks", "references"]

# Echo servers whose AddPrompt spends this many microseconds of Python CPU first, measured beside
# echo at 32 in flight: what a handler's own work costs in this server flavour. The first is the
# baseline of AddPrompt at 32 in flight (a server doing its own work in 100 µs of Python), the
# others are reference points. Beside them, an echo server that syncs each AddPrompt to a file
# before answering, at 1 in flight: the least any server that answers only once a write is on
# this disk can take, the baseline of the durable 1-in-flight latency.
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


def checks(runs: Runs) -> list[Check]:
    """Each ratio is the median of the runs' own ratios (both sides of one ratio are measured
    back to back in a run); the rates shown beside it are medians too."""

    def ratio(subject: str, baseline: str, metric: Callable[[Result], float]) -> float:
        return _ratio(runs, subject, baseline, metric)

    def tput(key: str) -> float:
        return _median(runs, key, _throughput)

    def p50(key: str) -> float:
        return _median(runs, key, _p50)

    found = [
        Check(
            "AddPrompt, 32 in flight: throughput vs echo + 100 us of Python",
            ratio("mg.add_prompt.32", "echo_work100.add_prompt.32", _throughput),
            1.0,
            True,
            f"{tput('mg.add_prompt.32'):.0f}/s vs {tput('echo_work100.add_prompt.32'):.0f}/s",
        ),
        Check(
            "AddPrompt, 1 in flight: p50 latency vs echo + fdatasync",
            ratio("mg.add_prompt.1", "echo_sync.add_prompt.1", _p50),
            1.3,
            False,
            f"{p50('mg.add_prompt.1') * 1e3:.2f} ms vs "
            f"{p50('echo_sync.add_prompt.1') * 1e3:.2f} ms",
        ),
        Check(
            "GetNode, 32 in flight: throughput vs echo",
            ratio("mg.get_node.32", "echo.get_node.32", _throughput),
            0.90,
            True,
            f"{tput('mg.get_node.32'):.0f}/s vs {tput('echo.get_node.32'):.0f}/s",
        ),
        Check(
            "StreamQuery 10k nodes, batched: nodes/s vs echo stream",
            ratio("mg.stream_query", "echo.stream_query", _throughput),
            0.80,
            True,
            f"{tput('mg.stream_query'):.0f}/s vs {tput('echo.stream_query'):.0f}/s",
        ),
        Check(
            "validator + redactor vs no plugins, AddPrompt 32 in flight",
            ratio("mg_plugins.add_prompt.32", "mg.add_prompt.32", _throughput),
            0.85,
            True,
            f"{tput('mg_plugins.add_prompt.32'):.0f}/s vs {tput('mg.add_prompt.32'):.0f}/s",
        ),
        Check(
            "durable vs fast, AddPrompt 32 in flight",
            ratio("mg.add_prompt.32", "mg_fast.add_prompt.32", _throughput),
            0.70,
            True,
            f"{tput('mg.add_prompt.32'):.0f}/s vs {tput('mg_fast.add_prompt.32'):.0f}/s",
        ),
        Check(
            "ListSessions first page of 10k sessions, 64 shards vs 1: p50",
            ratio("mg_shards64.list_sessions", "mg_shards1.list_sessions", _p50),
            3.0,
            False,
            f"{p50('mg_shards64.list_sessions') * 1e3:.2f} ms vs "
            f"{p50('mg_shards1.list_sessions') * 1e3:.2f} ms",
        ),
    ]
    found += [
        Check(
            "2 workers vs 1, AddPrompt 64 in flight sent to each session's worker",
            ratio("mg_workers2.add_prompt_routed.64", "mg.add_prompt_routed.64", _throughput),
            1.3,
            True,
            f"{tput('mg_workers2.add_prompt_routed.64'):.0f}/s vs "
            f"{tput('mg.add_prompt_routed.64'):.0f}/s",
        ),
        Check(
            "GetNode forwarded to the owning worker vs answered directly: p50",
            ratio("mg_workers2.get_node_forwarded.1", "mg_workers2.get_node_direct.1", _p50),
            1.5,
            False,
            f"{p50('mg_workers2.get_node_forwarded.1') * 1e3:.2f} ms vs "
            f"{p50('mg_workers2.get_node_direct.1') * 1e3:.2f} ms",
        ),
    ]
    if all("pg.add_prompt.64" in run for run in runs):
        found.append(
            Check(
                "2 workers vs PostgreSQL (the node and its two edges, 64 connections)",
                ratio("mg_workers2.add_prompt_routed.64", "pg.add_prompt.64", _throughput),
                1.0,
                True,
                f"{tput('mg_workers2.add_prompt_routed.64'):.0f}/s vs "
                f"{tput('pg.add_prompt.64'):.0f}/s",
            )
        )
    if all("pg.ingest" in run for run in runs):
        found += [
            Check(
                "Turns via Ingest vs PostgreSQL batches (turns/s)",
                ratio("mg.ingest", "pg.ingest", _throughput),
                1.5,
                True,
                f"{tput('mg.ingest'):.0f}/s vs {tput('pg.ingest'):.0f}/s",
            ),
            Check(
                "One turn (RecordTurn) p50 vs PostgreSQL's two commits",
                ratio("mg.single_turn", "pg.single_turn", _p50),
                1.5,
                False,
                f"{p50('mg.single_turn') * 1e3:.2f} ms vs {p50('pg.single_turn') * 1e3:.2f} ms",
            ),
        ]
    return found


def references(runs: Runs) -> list[Reference]:
    """Echo with a handler's worth of CPU per call vs plain echo (AddPrompt throughput, 32 in
    flight), echo with a synced write per call vs plain echo (AddPrompt p50, 1 in flight), and
    a turn recorded with two calls vs one."""
    found = []
    for us in WORK_REFERENCES_US:
        key = f"echo_work{us}.add_prompt.32"
        found.append(
            Reference(
                f"echo + {us} us of Python CPU per AddPrompt, 32 in flight: throughput",
                _ratio(runs, key, "echo.add_prompt.32", _throughput),
                f"{_median(runs, key, _throughput):.0f}/s",
            )
        )
    found.append(
        Reference(
            "echo + an fdatasync per AddPrompt, 1 in flight: p50 latency",
            _ratio(runs, "echo_sync.add_prompt.1", "echo.add_prompt.1", _p50),
            f"{_median(runs, 'echo_sync.add_prompt.1', _p50) * 1e3:.2f} ms",
        )
    )
    found.append(
        Reference(
            "one turn as AddPrompt + AddResponse vs RecordTurn: p50 latency",
            _ratio(runs, "mg.two_call_turn", "mg.single_turn", _p50),
            f"{_median(runs, 'mg.two_call_turn', _p50) * 1e3:.2f} ms",
        )
    )
    return found
