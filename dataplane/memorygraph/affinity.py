"""Keeping a server process on one CPU (the `pin_cpus` setting).

A server process runs one thread of Python at a time: its threads take turns at the
interpreter's lock, handing it over many times per call (the thread gRPC polls on, the thread a
call runs on, a batch's leader and the writes it answers). When those threads may run on any of
several CPUs, each hand-over wakes a thread on another CPU, whose caches hold none of what the
last one worked on. On a 2-CPU virtual machine a server kept on one CPU answered AddPrompt at
32 calls in flight about twice as fast as one left to run anywhere, for about half the CPU per
call (see docs/benchmarks.md).

Only where the CPUs are the process's own: a machine of its own, or a Kubernetes pod given
whole CPUs of its own (Guaranteed QoS, a whole number of CPUs, the kubelet's static CPU manager
policy). Processes on shared CPUs that each pinned themselves would crowd onto the same ones.
"""

from __future__ import annotations

import os

from memorygraph.errors import ConfigError

__all__ = ["pin_to_one_cpu"]

_TASKS = "/proc/self/task"


def pin_to_one_cpu(index: int = 0) -> int:
    """Keep every thread of this process, and every thread they start from now on, on one
    CPU: the `index`-th (counting round) of those the process may run on (a worker's index, so
    that the workers of one data directory each have one of their own). Returns that CPU."""
    if not hasattr(os, "sched_setaffinity"):
        raise ConfigError("pin_cpus: this platform cannot keep a process on one CPU")
    allowed = sorted(os.sched_getaffinity(0))
    cpu = allowed[index % len(allowed)]
    # A thread's affinity is its own, and a new thread takes its creator's: pinning each
    # thread there is now covers every later one.
    try:
        threads = [int(task) for task in os.listdir(_TASKS)]
    except OSError:  # no /proc: this thread, and those it starts
        threads = [0]
    for thread in threads:
        try:
            os.sched_setaffinity(thread, {cpu})
        except ProcessLookupError:
            continue  # it ended meanwhile
    return cpu
