"""The timer thread behind retention, the plugins-file watcher and the pool watchdog."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from memorygraph.periodic import Periodic


def test_a_failing_step_is_logged_and_the_next_one_runs(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []
    third = threading.Event()

    def step() -> None:
        runs.append(len(runs))
        if len(runs) == 3:
            third.set()
        if len(runs) == 1:
            raise ValueError("first")

    periodic = Periodic(
        "test-periodic", 0.01, step, log=logging.getLogger("test"), failure="the step failed"
    )
    periodic.start()
    try:
        assert third.wait(5)
    finally:
        periodic.stop()
    count = len(runs)
    assert [r.getMessage() for r in caplog.records if r.name == "test"] == ["the step failed"]
    time.sleep(0.05)
    assert len(runs) == count  # none after stop


def test_a_step_that_stops_its_runner_is_the_last() -> None:
    runs: list[int] = []
    periodic: Periodic

    def step() -> None:
        runs.append(1)
        periodic.stop()

    periodic = Periodic("test-periodic", 0.01, step)
    periodic.start()
    periodic._thread.join(5)
    assert runs == [1] and periodic.stopping
    periodic.stop()  # and stopping again from outside is harmless
