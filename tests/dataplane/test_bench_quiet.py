"""`bench.quiet`: the CPU other processes use while a scenario runs, told apart from the
benchmark's own process tree."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from memorygraph.bench.load import Result
from memorygraph.bench.quiet import CpuSnapshot, others, quietest, settle, snapshot

BUSY = "import time\nend = time.monotonic() + 30\nwhile time.monotonic() < end: pass\n"


DETACH = (
    "import subprocess, sys\n"
    "quiet = {'stdout': subprocess.DEVNULL, 'stderr': subprocess.DEVNULL}\n"
    "spin = [sys.executable, '-c', sys.argv[1]]\n"
    "spinner = subprocess.Popen(spin, start_new_session=True, **quiet)\n"
    "print(spinner.pid)\n"
)


def _busy_outside_the_tree() -> int:
    """A process spinning on one core whose parent is not this one (its parent exits)."""
    started = subprocess.run(
        [sys.executable, "-c", DETACH, BUSY], capture_output=True, text=True, check=True, timeout=30
    )
    return int(started.stdout)


def _measure(seconds: float, also: tuple[int, ...] = ()) -> float:
    before = snapshot(also=also)
    time.sleep(seconds)
    return others(before, snapshot(also=also))


def test_a_process_outside_the_tree_counts_and_the_trees_own_do_not() -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    quiet_before = _measure(1.0)
    outsider = _busy_outside_the_tree()  # its parent exited: no longer in this tree
    try:
        busy = _measure(2.0)
        # A server the benchmark started that left its tree (PostgreSQL's postmaster) is named.
        named = _measure(2.0, also=(outsider,))
    finally:
        os.kill(outsider, signal.SIGKILL)
    assert busy > quiet_before + 0.6, (quiet_before, busy)  # about one core more
    assert named < busy - 0.5, (named, busy)
    child = subprocess.Popen([sys.executable, "-c", BUSY])  # in the tree: the benchmark's own
    try:
        own = _measure(2.0)
    finally:
        child.kill()
        child.wait()
    assert own < busy - 0.5, (own, busy)


def test_no_time_no_cores() -> None:
    now = snapshot()
    assert others(now, now) == 0.0


def _own_cpu(*cores: float) -> object:
    """Snapshots a window apart whose own CPU grows by `cores` per second, one after another."""
    when, own = time.monotonic(), 0.0
    rates = iter(cores)

    def take() -> CpuSnapshot:
        nonlocal when, own
        rate = next(rates)
        when, own = when + 0.01, own + rate * 0.01
        return CpuSnapshot(when, 0.0, own)

    return take


def test_settling_waits_for_the_benchmarks_own_processes_to_go_idle() -> None:
    # Busy (a server compacting), busy, then idle: settled at the third window.
    waited = settle(window=0.01, take=_own_cpu(0.0, 0.9, 0.5, 0.01))  # type: ignore[arg-type]
    assert waited is not None and waited >= 0.03
    still_busy = _own_cpu(*([0.9] * 1000))
    assert settle(window=0.01, timeout=0.05, take=still_busy) is None  # type: ignore[arg-type]


def _attempts(*busy: float) -> tuple[list[int], object]:
    made: list[int] = []

    def attempt(number: int) -> dict[str, Result]:
        made.append(number)
        return {"echo": Result(1, 1.0, others=0.0), "mg": Result(1, 1.0, others=busy[number])}

    return made, attempt


def test_a_busy_group_is_measured_again_and_the_quietest_attempt_counts() -> None:
    made, attempt = _attempts(0.9, 0.1, 0.8)
    assert quietest(attempt, 2)["mg"].others == 0.1  # type: ignore[arg-type]
    assert made == [0, 1]  # the second was quiet: no third
    made, attempt = _attempts(0.9, 0.5, 0.7)
    assert quietest(attempt, 2)["mg"].others == 0.5  # type: ignore[arg-type]
    assert made == [0, 1, 2]
    made, attempt = _attempts(0.9)
    assert quietest(attempt, 0)["mg"].others == 0.9  # type: ignore[arg-type]
    assert made == [0]


def test_a_process_in_two_named_trees_counts_once(tmp_path: Path) -> None:
    (tmp_path / "stat").write_text("cpu  100 0 100 0 0 0 0 0 0 0\n")
    # pid 10 (the benchmark) is the parent of 11 (a server it also names), which uses 5 s.
    for pid, parent, ticks in ((10, 1, 100), (11, 10, 500)):
        (tmp_path / str(pid)).mkdir()
        fields = ["S", str(parent)] + ["0"] * 9 + [str(ticks), "0", "0", "0"]
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (python) {' '.join(fields)}\n")
    tick = 1.0 / os.sysconf("SC_CLK_TCK")
    alone = snapshot(10, tmp_path).own
    named = snapshot(10, tmp_path, also=(11,)).own
    assert alone == named == pytest.approx(600 * tick)
