"""Restores of large exports, several at once: they are counted under a cap of their own, the
export bytes they hold together stay within a budget (a piece that would exceed it is refused
before it is read), and the server's memory stays under a stated bound while health answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from memorygraph.client import Client
from memorygraph.errors import ResourceExhausted
from memorygraph.server import RunningServer
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub
from prometheus_client import REGISTRY

from .abuse_support import MiB, Prober, memory, wait_for
from .conftest import ServerProcess

Start = Callable[..., RunningServer]
PIECE = 512 << 10


def _archived(mg: Client, prompts: int, size: int) -> bytes:
    """The export of a new session of `prompts` prompts of `size` characters, archived (so a
    restore writes all of it back)."""
    session = mg.create_session(title="large")
    for i in range(prompts):
        mg.add_prompt(session.id, f"{i:08d}" + "x" * (size - 8))
    data, summary = mg.export_session(session.id, for_archive=True)
    mg.archive_session(session.id, summary.content_sha256)
    return data


def _pieces(
    data: bytes, start: int = 0, end: int | None = None
) -> Iterator[pb.RestoreSessionChunk]:
    end = len(data) if end is None else end
    for offset in range(start, end, PIECE):
        yield pb.RestoreSessionChunk(data=data[offset : min(offset + PIECE, end)])


def _held() -> float:
    return REGISTRY.get_sample_value("memorygraph_restore_bytes") or 0.0


class HeldRestore:
    """A restore that sends the first `first` bytes of its export, then waits to be released
    before it sends the rest."""

    def __init__(self, stub: MemoryGraphServiceStub, data: bytes, first: int) -> None:
        self.release = threading.Event()
        self.data = data
        self.first = first
        self.future = stub.RestoreSession.future(self._requests(), timeout=60)

    def _requests(self) -> Iterator[pb.RestoreSessionChunk]:
        yield from _pieces(self.data, 0, self.first)
        self.release.wait(60)
        yield from _pieces(self.data, self.first)

    def finish(self) -> pb.RestoreSessionResponse:
        self.release.set()
        result: pb.RestoreSessionResponse = self.future.result(timeout=60)
        return result


@pytest.mark.one_process("each worker admits restores up to its own cap")
def test_restores_beyond_their_cap_are_refused_at_once(start_inprocess: Start) -> None:
    server = start_inprocess(max_restores=1)
    address = f"127.0.0.1:{server.port}"
    with Client(address) as mg:
        first, second = _archived(mg, 4, 1000), _archived(mg, 4, 1000)
    with grpc.insecure_channel(address) as channel:
        stub = MemoryGraphServiceStub(channel)
        held = HeldRestore(stub, first, len(first) // 2)
        wait_for(lambda: _held() > 0, 10, "the first restore did not start")
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as refused:
            stub.RestoreSession(_pieces(second), timeout=30)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "too many restores at once (limit 1)" in refused.value.details()
        assert time.monotonic() - started < 2
        assert held.finish().nodes == 5
        assert stub.RestoreSession(_pieces(second), timeout=30).nodes == 5  # retried later
    assert _held() == 0


@pytest.mark.one_process("each worker has its own restore byte budget")
def test_restores_in_flight_are_refused_past_their_byte_budget(start_inprocess: Start) -> None:
    server = start_inprocess(restore_budget_bytes=4 * MiB)
    address = f"127.0.0.1:{server.port}"
    with Client(address) as mg:
        # Each about 2.8 MB: two prompts of 700 kB, each in its record and in its event.
        first, second = _archived(mg, 2, 700_000), _archived(mg, 2, 700_000)
        too_large = _archived(mg, 3, 900_000)
    assert len(first) < 4 * MiB < len(first) + len(second) and len(too_large) > 4 * MiB
    with grpc.insecure_channel(address) as channel:
        stub = MemoryGraphServiceStub(channel)
        held = HeldRestore(stub, first, 5 * PIECE)
        wait_for(lambda: _held() == 5 * PIECE, 10, "the first restore did not read its pieces")
        with pytest.raises(grpc.RpcError) as refused:
            stub.RestoreSession(_pieces(second), timeout=30)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "retry later" in refused.value.details()
        assert _held() == 5 * PIECE  # the refused restore holds nothing, and never held more
        assert held.finish().nodes == 3
        assert stub.RestoreSession(_pieces(second), timeout=30).nodes == 3
        with pytest.raises(grpc.RpcError) as alone:
            stub.RestoreSession(_pieces(too_large), timeout=30)
        assert alone.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"larger than {4 * MiB} bytes" in alone.value.details()
    assert _held() == 0


@pytest.mark.slow
def test_concurrent_large_restores_keep_the_servers_memory_bounded(tmp_path: Path) -> None:
    """Four restores of 64 MiB exports at once, with two allowed at a time and a budget of
    160 MiB: two are refused at once and succeed when retried, health answers throughout, and
    the server's peak memory stays under 5.5 times the budget (decoded records of the
    restores held, about 1.5 times their exports at most, and one restore written at a time,
    about 4 times its export). Measured: a peak 550 MiB above the idle server; before the
    bounds every restore was admitted and held its export about five times (1.2 GiB)."""
    budget = 160 * MiB
    config = tmp_path / "config.yaml"
    config.write_text(
        "durability: fast\nmax_content_bytes: 1100000\nmax_message_bytes: 16777216\n"
        f"max_restores: 2\nrestore_budget_bytes: {budget}\n"
    )
    server = ServerProcess(tmp_path / "data", "--config", str(config)).start()
    try:
        with Client(server.address, timeout=120) as mg:
            exports = [_archived(mg, 32, 1_000_000) for _ in range(4)]
        server.stop()
        server.start()  # a fresh process: its peak is the restores'
        assert server.proc is not None
        before = memory(server.proc.pid)["VmRSS"]
        outcomes: list[str] = []

        def restore(data: bytes) -> None:
            with Client(server.address, timeout=120) as mg:
                try:
                    mg.restore_session(data)
                    outcomes.append("restored")
                except ResourceExhausted as exc:
                    outcomes.append(str(exc))

        with Prober(server.address) as prober:
            threads = [threading.Thread(target=restore, args=(data,)) for data in exports]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        peak = memory(server.proc.pid)["VmHWM"] - before
        assert outcomes.count("restored") >= 2
        refused = [o for o in outcomes if o != "restored"]
        assert all("too many restores" in o or "retry later" in o for o in refused)
        with Client(server.address, timeout=120) as mg:
            again = [mg.restore_session(data) for data in exports]
        assert sum(not r.already_present for r in again) == len(refused)
        assert prober.answers and not prober.failures
    finally:
        if server.proc is not None:
            server.stop()
    assert peak < 5.5 * budget, f"peak RSS rose {peak / MiB:.0f} MiB"
