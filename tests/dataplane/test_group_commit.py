"""Group commit: a writer is released only by a sync that began after its batch was appended."""

from __future__ import annotations

import threading
import time

import pytest
from memorygraph.store.commit import CommitFailed, GroupCommitter


class Log:
    """A write-ahead log stand-in: appended batches become durable when `sync` runs."""

    def __init__(self, delay: float = 0.002) -> None:
        self.delay = delay
        self.appended = 0
        self.durable = 0
        self.syncs = 0
        self.lock = threading.Lock()

    def append(self) -> None:
        with self.lock:
            self.appended += 1

    def sync(self) -> None:
        with self.lock:
            covered = self.appended
        time.sleep(self.delay)
        with self.lock:
            self.durable = max(self.durable, covered)
            self.syncs += 1


def test_every_writer_is_released_by_a_sync_covering_its_batch() -> None:
    log = Log()
    groups: list[int] = []
    committer = GroupCommitter(log.sync, on_group=lambda writes, _: groups.append(writes))
    appends = threading.Lock()  # the writers' lock: append and ticket in one step
    early: list[int] = []

    def writer() -> None:
        for _ in range(50):
            with appends:
                log.append()
                position = log.appended
                ticket = committer.ticket()
            committer.wait(ticket)
            with log.lock:
                if log.durable < position:
                    early.append(position)

    threads = [threading.Thread(target=writer) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    committer.close()
    assert not early
    assert sum(groups) == 16 * 50
    assert log.syncs < 16 * 50  # concurrent writers shared syncs


def test_a_failed_sync_fails_the_waiting_writers_and_later_ones() -> None:
    def broken() -> None:
        raise OSError("disk gone")

    committer = GroupCommitter(broken)
    with pytest.raises(CommitFailed):
        committer.wait(committer.ticket())
    assert committer.failed
    with pytest.raises(CommitFailed):
        committer.wait(committer.ticket())


def test_close_syncs_what_is_pending() -> None:
    log = Log(delay=0.05)
    committer = GroupCommitter(log.sync)
    log.append()
    committer.ticket()
    committer.close()
    assert log.durable == 1
