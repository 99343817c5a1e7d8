"""Keeping a server process on one CPU (the `pin_cpus` setting).

A server process runs one thread of Python at a time: its threads take turns at the
interpreter's lock, handing it over many times per call (the thread gRPC polls on, the thread a
call runs on, a batch's leader and the writes it answers). When those threads may run on any of
several CPUs, a hand-over can wake a thread on another CPU, whose caches hold none of what the
last one worked on. On a 2-CPU virtual machine a server kept on one CPU answered AddPrompt at
32 calls in flight about twice as fast as one left to run anywhere, for about half the CPU per
call (see docs/benchmarks.md). RocksDB's own threads (flushes and compactions) need no
interpreter lock and stay free to run on any of the process's CPUs.

Only where the CPUs are the process's own: a machine of its own, or a Kubernetes pod given
whole CPUs of its own (Guaranteed QoS, the kubelet's static CPU manager policy). Processes on
shared CPUs that each pinned themselves would crowd onto the same ones.
"""

from __future__ import annotations

import os

from memorygraph.errors import ConfigError

__all__ = ["pin_to_one_cpu", "unpin_rocksdb_threads"]

_TASKS = "/proc/self/task"
# How RocksDB's names for the threads of its background pools begin.
_ROCKSDB_THREAD = "rocksdb:"


def pin_to_one_cpu(index: int = 0) -> tuple[int, frozenset[int]]:
    """Keep every thread of this process, and every thread they start from now on, on one
    CPU: the `index`-th (counting round) of those the process may run on (a worker's index, so
    that the workers of one data directory each have one of their own). Returns that CPU and
    the CPUs the process could run on before."""
    if not hasattr(os, "sched_setaffinity"):
        raise ConfigError("pin_cpus: this platform cannot keep a process on one CPU")
    allowed = frozenset(os.sched_getaffinity(0))
    cpu = sorted(allowed)[index % len(allowed)]
    # A thread's affinity is its own, and a new thread takes its creator's: pinning each
    # thread there is covers every later one, once no thread that was not yet pinned can have
    # started another. So again until a pass finds no thread it had not pinned before.
    pinned: set[int] = set()
    while new := set(_threads()) - pinned:
        for thread in new:
            _set(thread, {cpu})
        pinned |= new
    return cpu, allowed


def unpin_rocksdb_threads(cpus: frozenset[int] | None) -> None:
    """Let RocksDB's background threads (flushes and compactions, which take no interpreter
    lock) run on `cpus` again; None: nothing was pinned."""
    if cpus is None:
        return
    for thread in _threads():
        try:
            with open(f"{_TASKS}/{thread}/comm") as comm:
                name = comm.read()
        except OSError:
            continue  # it ended meanwhile
        if name.startswith(_ROCKSDB_THREAD):
            _set(thread, cpus)


def _threads() -> list[int]:
    try:
        return [int(task) for task in os.listdir(_TASKS)]
    except OSError:  # no /proc: this thread, and those it starts
        return [0]


def _set(thread: int, cpus: set[int] | frozenset[int]) -> None:
    try:
        os.sched_setaffinity(thread, cpus)
    except ProcessLookupError:
        pass  # it ended meanwhile
    except OSError as exc:  # e.g. a CPU its cgroup no longer allows
        raise ConfigError(f"pin_cpus: cannot keep threads on CPUs {sorted(cpus)}: {exc}") from None
