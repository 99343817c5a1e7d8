"""What the benchmark prints and writes: a line per measured scenario as it finishes, the
checks and reference points at the end, and the same results as JSON.

Both formats only grow (a column, a key): earlier measurements were recorded in them and
tests read them.
This module only formats; it neither measures nor decides what is met.
"""

from __future__ import annotations

import json
from pathlib import Path

from memorygraph.bench.load import Result
from memorygraph.bench.quiet import NOISY_CORES
from memorygraph.bench.verdicts import Check, Reference, Runs

__all__ = ["print_checks", "print_quiet", "print_references", "print_result", "write_json"]


def print_result(name: str, result: Result) -> None:
    """One scenario's rate and median latency, as soon as it has been measured, and the CPU
    other processes used meanwhile (marked when the machine was not quiet)."""
    noisy = "  NOISY" if result.others > NOISY_CORES else ""
    print(
        f"  {name:<28} {result.throughput:>10.0f}/s   p50 {result.p50 * 1000:7.2f} ms"
        f"   others {result.others:4.2f} cores{noisy}",
        flush=True,
    )


def print_quiet(runs: Runs) -> None:
    """How quiet the machine was: the most other processes used during any scenario, and
    each scenario still measured while they used more than NOISY_CORES after its group was
    measured again (its ratios are not to be trusted)."""
    most = max((r.others for run in runs for r in run.values()), default=0.0)
    print(f"other processes used at most {most:.2f} cores during a scenario")
    for number, run in enumerate(runs, 1):
        for name, result in run.items():
            if result.others > NOISY_CORES:
                print(
                    f"  NOISY run {number} {name}: {result.others:.2f} cores even at the "
                    "quietest attempt; its ratios are not to be trusted"
                )


def print_checks(runs: int, duration: float, checks: list[Check], slices: int = 1) -> None:
    """Every check with its ratio, its target and whether it was met."""
    sliced = f" in {slices} slices taken in turn" if slices > 1 else ""
    print(f"\nmedians of {runs} runs, {duration:g}s each{sliced}:")
    for check in checks:
        relation = ">=" if check.higher_is_better else "<="
        verdict = "met" if check.met else "MISSED"
        print(
            f"  {check.name:<58} {check.ratio:6.2f} (target {relation} {check.target:.2f}) "
            f"{verdict}   [{check.detail}]"
        )


def print_references(references: list[Reference]) -> None:
    """The reference points, which have no target."""
    print("reference points (not targets), vs echo in the same runs:")
    for reference in references:
        print(f"  {reference.name:<58} {reference.ratio:6.2f}   [{reference.detail}]")


def write_json(
    path: Path,
    runs: Runs,
    checks: list[Check],
    references: list[Reference],
    settings: dict[str, float] | None = None,
) -> None:
    """The settings measured with, each run's rates and latencies, the checks and the
    reference points."""
    path.write_text(
        json.dumps(
            {
                "settings": settings or {},
                "runs": [
                    {
                        k: {
                            "throughput": r.throughput,
                            "p50": r.p50,
                            "p99": r.percentile(0.99),
                            "others": r.others,
                        }
                        for k, r in run.items()
                    }
                    for run in runs
                ],
                "checks": [
                    {"name": c.name, "ratio": c.ratio, "target": c.target, "met": c.met}
                    for c in checks
                ],
                "references": [{"name": r.name, "ratio": r.ratio} for r in references],
            },
            indent=2,
        )
    )
