"""The unary reads' thread pool: a few threads take calls as they come; for each thread held on
one call for the pool's patience, a spare takes queued calls, up to the pool's limit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures

import pytest
from memorygraph.config import ConfigError, load_config
from memorygraph.servicers.handlers import READS, HandlerSettings, HandlerWrapper
from memorygraph.servicers.memorygraph import SERVICE, service_handlers
from memorygraph.servicers.pools import ElasticPool

WAIT = 10.0  # long enough for any machine; the tests finish long before on a working pool


@pytest.fixture
def held() -> Iterator[threading.Event]:
    """Calls that wait on this event until the test ends."""
    release = threading.Event()
    yield release
    release.set()


def _thread_name() -> str:
    return threading.current_thread().name


def test_calls_that_keep_up_run_on_the_core_threads_alone() -> None:
    pool = ElasticPool(2, 16, patience=1.0)
    try:
        names = [f.result(WAIT) for f in [pool.submit(_thread_name) for _ in range(500)]]
        assert len(set(names)) <= 2
        assert pool.threads <= 2
        assert all(name.startswith("rpc-") for name in names)
    finally:
        pool.shutdown()


def test_a_call_queued_behind_held_core_threads_goes_to_a_spare(
    held: threading.Event,
) -> None:
    pool = ElasticPool(2, 8, patience=0.05)
    try:
        began = time.monotonic()
        holding = [pool.submit(held.wait, WAIT) for _ in range(2)]
        late = pool.submit(_thread_name)
        name = late.result(WAIT)
        # Not before the core threads had been held for the patience.
        assert time.monotonic() - began >= 0.05
        assert not any(f.done() for f in holding)  # the core threads are still held
        assert pool.threads == 3
        assert name.startswith("rpc-")
    finally:
        held.set()
        pool.shutdown()


def test_each_call_that_has_waited_gets_a_spare_of_its_own(held: threading.Event) -> None:
    pool = ElasticPool(1, 6, patience=0.02)
    try:
        pool.submit(held.wait, WAIT)
        waiting = [pool.submit(held.wait, WAIT) for _ in range(4)]
        deadline = time.monotonic() + WAIT
        while pool.threads < 5:  # four spares, one for each waiting call
            assert time.monotonic() < deadline, f"{pool.threads} threads"
            time.sleep(0.01)
        held.set()
        for f in waiting:
            assert f.result(WAIT) is True
    finally:
        held.set()
        pool.shutdown()


def test_no_more_threads_than_the_limit_and_queued_calls_run_once_one_is_free(
    held: threading.Event,
) -> None:
    pool = ElasticPool(1, 2, patience=0.01)
    try:
        holding = [pool.submit(held.wait, WAIT) for _ in range(2)]
        late = pool.submit(_thread_name)
        deadline = time.monotonic() + WAIT
        while pool.busy < 2:  # the core thread and the one spare, both held
            assert time.monotonic() < deadline, f"{pool.busy} threads on a call"
            time.sleep(0.01)
        time.sleep(0.1)
        assert not late.done()
        assert pool.threads == 2
        held.set()
        assert late.result(WAIT).startswith("rpc-")
        assert all(f.result(WAIT) for f in holding)
    finally:
        held.set()
        pool.shutdown()


def test_while_a_thread_is_held_its_spare_takes_calls_as_they_come(
    held: threading.Event,
) -> None:
    pool = ElasticPool(1, 2, patience=0.2)
    try:
        pool.submit(held.wait, WAIT)
        assert pool.submit(_thread_name).result(WAIT).startswith("rpc-")  # waits for the spare
        started = time.monotonic()
        for _ in range(20):  # the spare serves them all, one after the other, without waiting
            assert pool.submit(_thread_name).result(WAIT).startswith("rpc-")
        assert time.monotonic() - started < 10 * 0.2
        assert pool.threads == 2
        assert pool.spared == 21
    finally:
        held.set()
        pool.shutdown()


def test_a_spare_slow_to_start_is_not_started_again_and_again(
    held: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_spare = ElasticPool._run_spare

    def late(pool: ElasticPool) -> None:
        time.sleep(0.05)  # a spare the system runs a little late
        run_spare(pool)

    monkeypatch.setattr(ElasticPool, "_run_spare", late)
    pool = ElasticPool(1, 8, patience=0.01)
    try:
        pool.submit(held.wait, WAIT)
        assert pool.submit(_thread_name).result(WAIT).startswith("rpc-")
        time.sleep(0.1)
        assert pool.threads == 2  # one held thread, one spare
    finally:
        held.set()
        pool.shutdown()


def test_load_alone_starts_no_spare() -> None:
    pool = ElasticPool(2, 16, patience=0.5)
    try:
        submitted: list[futures.Future[str]] = []

        def submit_many() -> None:
            submitted.extend(pool.submit(_thread_name) for _ in range(500))

        submitters = [threading.Thread(target=submit_many) for _ in range(8)]
        for thread in submitters:
            thread.start()
        for thread in submitters:
            thread.join()
        assert len({f.result(WAIT) for f in submitted}) <= 2  # the queue was long, not held
        assert pool.threads == 2 and pool.spared == 0
    finally:
        pool.shutdown()


def test_once_the_held_thread_is_free_spares_take_no_more_calls_and_end_when_idle(
    held: threading.Event,
) -> None:
    pool = ElasticPool(1, 4, patience=0.02, spare_idle=0.3)
    try:
        holding = pool.submit(held.wait, WAIT)
        assert pool.submit(_thread_name).result(WAIT).startswith("rpc-")
        assert pool.threads == 2
        held.set()
        assert holding.result(WAIT) is True
        spared = pool.spared
        for _ in range(20):
            pool.submit(_thread_name).result(WAIT)
        assert pool.spared == spared
        deadline = time.monotonic() + WAIT
        while pool.threads > 1:
            assert time.monotonic() < deadline, f"{pool.threads} threads"
            time.sleep(0.05)
    finally:
        held.set()
        pool.shutdown()


def test_a_core_thread_already_woken_for_a_call_is_not_counted_free_for_the_next(
    held: threading.Event,
) -> None:
    pool = ElasticPool(2, 8, patience=WAIT)
    try:
        pool.submit(_thread_name).result(WAIT)  # one core thread, idle again
        time.sleep(0.05)
        pool.submit(held.wait, WAIT)  # wakes it
        # The second core thread starts for this one: it does not wait its patience.
        assert pool.submit(_thread_name).result(WAIT / 4).startswith("rpc-")
        assert pool.threads == 2
    finally:
        held.set()
        pool.shutdown()


def test_after_shutdown_calls_queued_behind_a_held_thread_still_get_spares(
    held: threading.Event,
) -> None:
    pool = ElasticPool(1, 2, patience=0.02)
    holding = pool.submit(held.wait, WAIT)
    queued = pool.submit(_thread_name)
    pool.shutdown(wait=False)
    assert queued.result(WAIT / 4).startswith("rpc-")
    assert not holding.done()
    held.set()
    assert holding.result(WAIT) is True


def test_a_thread_the_system_will_not_start_fails_the_call_it_was_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = ElasticPool(1, 2)
    try:
        with monkeypatch.context() as patched:

            def refuse(self: threading.Thread) -> None:
                raise RuntimeError("can't start new thread")

            patched.setattr(threading.Thread, "start", refuse)
            with pytest.raises(RuntimeError, match="cannot start a thread"):
                pool.submit(_thread_name)
        assert pool.threads == 0
        assert pool.submit(_thread_name).result(WAIT).startswith("rpc-")
    finally:
        pool.shutdown()


def test_what_a_call_raises_is_its_future_s() -> None:
    pool = ElasticPool(1, 1)
    try:

        def fail() -> None:
            raise KeyError("lost")

        with pytest.raises(KeyError, match="lost"):
            pool.submit(fail).result(WAIT)
        assert pool.submit(lambda: 7).result(WAIT) == 7  # the thread lives on
    finally:
        pool.shutdown()


def test_shutdown_runs_what_is_queued_and_refuses_more() -> None:
    pool = ElasticPool(1, 1)
    gate = threading.Event()
    first = pool.submit(gate.wait, WAIT)
    queued = [pool.submit(lambda i=i: i) for i in range(5)]
    gate.set()
    pool.shutdown(wait=True)
    assert first.result(0) is True
    assert [f.result(0) for f in queued] == list(range(5))
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(_thread_name)


def test_shutdown_can_cancel_what_is_queued(held: threading.Event) -> None:
    pool = ElasticPool(1, 1, patience=WAIT)
    started = threading.Event()

    def hold() -> bool:
        started.set()
        return held.wait(WAIT)

    running = pool.submit(hold)
    assert started.wait(WAIT)
    queued = [pool.submit(_thread_name) for _ in range(3)]
    pool.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in queued)
    held.set()
    assert running.result(WAIT) is True


def test_a_cancelled_call_never_runs(held: threading.Event) -> None:
    pool = ElasticPool(1, 1, patience=WAIT)
    try:
        pool.submit(held.wait, WAIT)
        ran = threading.Event()
        cancelled = pool.submit(ran.set)
        assert cancelled.cancel()
        held.set()
        assert pool.submit(lambda: 1).result(WAIT) == 1
        assert not ran.is_set()
        with pytest.raises(futures.CancelledError):
            cancelled.result(0)
    finally:
        held.set()
        pool.shutdown()


def test_core_must_be_within_the_limit() -> None:
    with pytest.raises(ValueError, match="core"):
        ElasticPool(0, 4)
    with pytest.raises(ValueError, match="core"):
        ElasticPool(5, 4)


def test_core_workers_in_the_settings() -> None:
    assert load_config(None, {}, environ={}).core_workers == 4
    # The default gives way to fewer workers in all; a number asked for does not.
    few = {"max_workers": 3, "max_streams": 1, "max_open_streams": 1}
    assert load_config(None, few, environ={}).core_workers == 3
    with pytest.raises(ConfigError, match=r"core_workers \(5\) must not be above max_workers"):
        load_config(None, {**few, "core_workers": 5}, environ={})
    with pytest.raises(ConfigError, match="core_workers"):
        load_config(None, {}, environ={"MEMORYGRAPH_CORE_WORKERS": "0"})
    assert load_config(None, {}, environ={"MEMORYGRAPH_CORE_WORKERS": "2"}).core_workers == 2


class _AnyServicer:
    def __getattr__(self, name: str) -> Callable[[object, object], None]:
        return lambda request, context: None


def test_reads_go_to_the_default_pool_and_every_other_call_to_the_waiting_pool() -> None:
    """gRPC runs a behaviour on the pool its `experimental_thread_pool` names, else on the
    server's own (the read pool)."""
    waiting = futures.ThreadPoolExecutor(1)
    wrapper = HandlerWrapper(HandlerSettings(waiting_pool=waiting))
    methods = {m.name: m for m in SERVICE.methods}
    assert set(methods) >= READS  # every read named is a method of the service
    for name, handler in service_handlers(_AnyServicer()).items():
        wrapped = wrapper.wrap(f"/{SERVICE.full_name}/{name}", handler)
        behaviour = (
            wrapped.unary_unary
            or wrapped.unary_stream
            or wrapped.stream_unary
            or wrapped.stream_stream
        )
        pool = getattr(behaviour, "experimental_thread_pool", None)
        streams = methods[name].client_streaming or methods[name].server_streaming
        if name in READS:
            assert pool is None and not streams, name
        else:
            assert pool is waiting, name
    waiting.shutdown()
