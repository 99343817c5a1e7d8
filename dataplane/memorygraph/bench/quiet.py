"""How quiet the machine was while a scenario ran: the CPU that processes other than the
benchmark's own (this process, its servers and their children, and servers it started that
left its tree, such as PostgreSQL's postmaster) used meanwhile.

A ratio is only as good as the pair behind it: a compaction, a build or a test suite running
beside one side of a pair skews it, and PostgreSQL suffers more from that than the data plane.
Every scenario records what others used, in cores (1.0: one core busy throughout), from the
kernel's counters: the machine's user and system time (`/proc/stat`) less that of the
benchmark's process tree (`/proc/<pid>/stat`, reaped children included). Interrupt time is
left out: the loopback traffic of the benchmark itself lands there.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

__all__ = ["NOISY_CORES", "CpuSnapshot", "Others", "others", "quietest", "settle", "snapshot"]

# A scenario during which others used more than this is marked as measured on a busy machine.
NOISY_CORES = 0.25

_TICK = 1.0 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSnapshot:
    when: float  # time.monotonic()
    busy: float  # CPU seconds the machine spent in user and system mode
    own: float  # CPU seconds of the process tree measured


def _machine_busy(proc: Path) -> float:
    fields = (proc / "stat").read_text().split("\n", 1)[0].split()
    user, nice, system = (int(value) for value in fields[1:4])
    return (user + nice + system) * _TICK


def _processes(proc: Path) -> dict[int, tuple[int, float]]:
    """Each process's parent and CPU seconds (its own, and its reaped children's)."""
    found: dict[int, tuple[int, float]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        fields = text[text.rindex(")") + 2 :].split()  # after the command, which may hold spaces
        parent = int(fields[1])
        utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
        found[int(entry.name)] = (parent, (utime + stime + cutime + cstime) * _TICK)
    return found


def _trees_cpu(roots: Iterable[int], processes: dict[int, tuple[int, float]]) -> float:
    """The CPU seconds of the processes in the trees of `roots`, each process counted once
    (one tree may hold another's root)."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    seen: set[int] = set()
    pending = list(roots)
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        pending.extend(children.get(pid, ()))
    return sum(processes[pid][1] for pid in seen if pid in processes)


def snapshot(
    root: int | None = None, proc: Path = Path("/proc"), *, also: Iterable[int] = ()
) -> CpuSnapshot:
    """The machine's CPU time and that of `root`'s process tree (default: this process) and of
    the trees of `also` (processes of the benchmark's that left its tree)."""
    root = os.getpid() if root is None else root
    own = _trees_cpu([root, *also], _processes(proc))
    return CpuSnapshot(time.monotonic(), _machine_busy(proc), own)


def settle(
    idle_cores: float = 0.05,
    window: float = 0.5,
    timeout: float = 60.0,
    take: Callable[[], CpuSnapshot] = snapshot,
) -> float | None:
    """Wait until the benchmark's own processes (its servers' flushes and compactions among
    them, which `others` does not count) use less than `idle_cores` over `window` seconds;
    the seconds waited, None if they were still busy after `timeout`."""
    started = time.monotonic()
    before = take()
    while True:
        time.sleep(window)
        after = take()
        if (after.own - before.own) / max(after.when - before.when, 1e-9) < idle_cores:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        before = after


def others(before: CpuSnapshot, after: CpuSnapshot) -> float:
    """The cores other processes used on average between two snapshots."""
    elapsed = after.when - before.when
    if elapsed <= 0:
        return 0.0
    used = (after.busy - before.busy) - (after.own - before.own)
    return max(used, 0.0) / elapsed


class Others(Protocol):
    others: float  # the cores other processes used while it was measured


R = TypeVar("R", bound=Others)


def quietest(attempt: Callable[[int], Mapping[str, R]], repeats: int) -> Mapping[str, R]:
    """`attempt(n)` measures a group of scenarios (n: 0 first, then 1, 2 ...); a group during
    which other processes used more than NOISY_CORES is measured again, at most `repeats`
    times. Returns the first quiet attempt, or else the one whose busiest scenario was the
    least busy."""
    best: Mapping[str, R] | None = None
    for number in range(1 + repeats):
        found = attempt(number)
        if best is None or _busiest(found) < _busiest(best):
            best = found
        if _busiest(best) <= NOISY_CORES:
            break
    assert best is not None  # at least one attempt
    return best


def _busiest(results: Mapping[str, Others]) -> float:
    return max((result.others for result in results.values()), default=0.0)
