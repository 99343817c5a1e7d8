"""Keeping a process on one CPU (`pin_cpus`), in a child process: pinning is for good."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ServerProcess, threads_cpus

_CHILD = """
import json, os, sys, threading
from memorygraph.affinity import pin_to_one_cpu

def cpus_of_threads():
    return sorted({min(os.sched_getaffinity(int(t))) if len(os.sched_getaffinity(int(t))) == 1
                   else -1 for t in os.listdir("/proc/self/task")})

started = threading.Event(); stop = threading.Event()
def idle():
    started.set(); stop.wait()
before = threading.Thread(target=idle); before.start(); started.wait()  # a thread already running
cpu, _ = pin_to_one_cpu(int(sys.argv[1]))
after_seen = []
after = threading.Thread(target=lambda: after_seen.append(sorted(os.sched_getaffinity(0))))
after.start(); after.join()
print(json.dumps({"cpu": cpu, "threads": cpus_of_threads(), "after": after_seen[0]}))
stop.set(); before.join()
"""


def _pinned(index: int) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(index)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def test_a_pinned_process_keeps_its_threads_old_and_new_on_the_cpu_its_index_names() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    for index in (0, 1, len(cpus) + 1):  # an index past the last CPU counts round again
        cpu = cpus[index % len(cpus)]
        assert _pinned(index) == {"cpu": cpu, "threads": [cpu], "after": [cpu]}


def test_pinning_asked_of_a_platform_that_cannot_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from memorygraph.affinity import pin_to_one_cpu
    from memorygraph.errors import ConfigError

    monkeypatch.delattr(os, "sched_setaffinity")
    with pytest.raises(ConfigError, match="cannot keep a process on one CPU"):
        pin_to_one_cpu()


def test_a_single_process_pinned_by_its_environment_and_unpinned_by_its_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MEMORYGRAPH_PIN_CPUS=true keeps a single-process server's threads on the first CPU it
    may use, RocksDB's background threads excepted; `--no-pin-cpus` overrides it."""
    cpus = frozenset(os.sched_getaffinity(0))
    monkeypatch.setenv("MEMORYGRAPH_PIN_CPUS", "true")
    pinned = ServerProcess(tmp_path / "pinned").start()
    try:
        assert pinned.proc is not None
        threads = threads_cpus(pinned.proc.pid)
        assert threads == {"python": {frozenset({min(cpus)})}, "rocksdb": {cpus}}
    finally:
        pinned.stop()
    free = ServerProcess(tmp_path / "free", "--no-pin-cpus").start()
    try:
        assert free.proc is not None
        assert threads_cpus(free.proc.pid) == {"python": {cpus}, "rocksdb": {cpus}}
        assert "keeping this process on CPU" not in free.output()
    finally:
        free.stop()
