"""`python -m memorygraph.bench` end to end (short runs, no PostgreSQL) and its echo baseline."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from memorygraph.bench.launch import free_port
from memorygraph.bench.load import Result, drive
from memorygraph.bench.targets import EchoServicer, SyncedLog, echo_server
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

from .conftest import REPO

pytestmark = pytest.mark.slow


def test_echo_with_work_spends_that_cpu_and_answers_like_echo() -> None:
    working = EchoServicer(1, 1, work_seconds=0.005)
    request = pb.AddPromptRequest(session_id="s", content="q")
    started = time.thread_time()
    answer = working.AddPrompt(request, None)  # type: ignore[arg-type]
    assert time.thread_time() - started >= 0.005
    assert answer is working.node and answer.kind == pb.NODE_KIND_PROMPT


def test_echo_runs_reads_and_writes_on_the_threads_the_data_plane_runs_them_on() -> None:
    """The baseline's reads go to a few threads with spares, its writes to a pool of their
    own, as in `memorygraph serve`: a comparison with it measures the servicer, not the
    threads."""
    port = free_port()
    server, pools = echo_server(
        port, EchoServicer(1, 1), max_workers=8, core_workers=2, max_concurrent_rpcs=16
    )
    server.start()

    def names(prefix: str) -> set[str]:
        return {t.name for t in threading.enumerate() if t.name.startswith(prefix)}

    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = MemoryGraphServiceStub(channel)
            for _ in range(20):
                stub.GetNode(pb.GetNodeRequest(node_id="n"), timeout=10)
            assert names("echo-read-") - {"echo-read-watcher"} and not names("echo-waiting")
            stub.AddPrompt(pb.AddPromptRequest(session_id="s", content="q"), timeout=10)
            assert names("echo-waiting")
            assert len(names("echo-read-") - {"echo-read-watcher"}) <= 2
    finally:
        server.stop(None).wait()
        for pool in pools:
            pool.shutdown(wait=False)


def test_synced_echo_keeps_every_request_it_answers(tmp_path: Path) -> None:
    log = SyncedLog(tmp_path / "echo.log")
    synced = EchoServicer(1, 1, log=log)
    requests = [pb.AddPromptRequest(session_id="s", content=f"q{i}") for i in range(3)]
    answers = [synced.AddPrompt(request, None) for request in requests]  # type: ignore[arg-type]
    log.close()
    assert all(answer is synced.node for answer in answers)
    written = (tmp_path / "echo.log").read_bytes()
    assert written == b"".join(request.SerializeToString() for request in requests)


def test_synced_echo_reusing_its_file_writes_over_it_from_the_start(tmp_path: Path) -> None:
    log = SyncedLog(tmp_path / "echo.log", reuse_bytes=10)
    assert (tmp_path / "echo.log").read_bytes() == bytes(10)
    for record in (b"abcd", b"efgh", b"ijkl"):  # the third does not fit after the second
        log.append(record)
    log.close()
    assert (tmp_path / "echo.log").read_bytes() == b"ijklefgh" + bytes(2)


def bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python -m memorygraph.bench ARGS` from the repository."""
    return subprocess.run(
        [sys.executable, "-m", "memorygraph.bench", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_bench_reports_every_ratio_and_the_reference_points(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["--runs", "1", "--duration", "0.3", "--warmup", "0.1", "--no-postgres"]
    proc = bench(*args, "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    names = [check["name"] for check in report["checks"]]
    assert len(names) == 9 and not any("PostgreSQL" in name for name in names)
    for entry in report["checks"] + report["references"]:
        assert math.isfinite(entry["ratio"]) and entry["ratio"] > 0, entry
    assert [r["name"] for r in report["references"]] == [
        "echo + 100 us of Python CPU per AddPrompt, 32 in flight: throughput",
        "echo + 240 us of Python CPU per AddPrompt, 32 in flight: throughput",
        "echo + an fdatasync per AddPrompt, 1 in flight: p50 latency",
        "the same fdatasync into a reused file vs appended, 1 in flight: p50 latency",
        "one turn as AddPrompt + AddResponse vs RecordTurn: p50 latency",
    ]
    (run,) = report["runs"]
    assert run["mg.ingest"]["throughput"] > 0 and run["mg.stream_query"]["throughput"] > 0
    assert run["mg.single_turn"]["throughput"] > 0 and run["mg.two_call_turn"]["throughput"] > 0
    assert run["mg_shards64.list_sessions"]["throughput"] > 0
    assert run["mg_workers2.add_prompt_routed.64"]["throughput"] > 0
    assert run["mg_workers2.add_prompt.64"]["throughput"] > 0
    assert run["mg_workers2.get_node_forwarded.1"]["throughput"] > 0
    assert run["mg_workers2.get_node_direct.1"]["throughput"] > 0
    assert "reference points" in proc.stdout
    # The stores whose writes are measured were brought to the state of stores in service.
    for name in ("mg", "mg_fast", "mg_plugins", "mg_workers2"):
        assert f"  {name}: write-ahead log rolled over onto a reused file" in proc.stdout
    assert all(0 <= result["others"] < 64 for result in run.values())
    assert "other processes used at most" in proc.stdout
    assert all(name in proc.stdout for name in names)


def test_bench_measures_only_the_groups_asked_for(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["--runs", "2", "--duration", "0.2", "--warmup", "0.1", "--no-postgres"]
    proc = bench(*args, "--only", "add_prompt.1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [sorted(run) for run in report["runs"]] == [
        [
            "echo.add_prompt.1",
            "echo_sync.add_prompt.1",
            "echo_sync_reused.add_prompt.1",
            "mg.add_prompt.1",
        ]
    ] * 2
    assert [c["name"] for c in report["checks"]] == [
        "AddPrompt, 1 in flight: p50 latency vs echo + fdatasync into a reused file"
    ]
    assert [r["name"] for r in report["references"]] == [
        "echo + an fdatasync per AddPrompt, 1 in flight: p50 latency",
        "the same fdatasync into a reused file vs appended, 1 in flight: p50 latency",
    ]
    # Only the server this group measures was filled, once per run.
    assert proc.stdout.count("write-ahead log rolled over") == 2
    assert proc.stdout.count("  mg: write-ahead log rolled over") == 2
    refused = bench("--only", "everything", timeout=60)
    assert refused.returncode == 2 and "invalid choice" in refused.stderr


def test_a_sliced_run_takes_every_scenario_in_turns_and_pools_them(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["--runs", "1", "--duration", "0.6", "--warmup", "0.1", "--slices", "3"]
    proc = bench(
        *args,
        *("--no-postgres", "--fresh-logs", "--pin-cpus", "--only", "add_prompt.1"),
        *("--json", str(out)),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "0.6s each in 3 slices taken in turn" in proc.stdout
    assert "rolled over" not in proc.stdout  # --fresh-logs: the stores as started
    report = json.loads(out.read_text())
    assert report["settings"] == {
        "runs": 1,
        "duration": 0.6,
        "warmup": 0.1,
        "slices": 3,
        "fresh_logs": True,
        "pin_cpus": True,
    }
    (run,) = report["runs"]
    assert sorted(run) == [
        "echo.add_prompt.1",
        "echo_sync.add_prompt.1",
        "echo_sync_reused.add_prompt.1",
        "mg.add_prompt.1",
    ]
    assert all(result["throughput"] > 0 for result in run.values())
    # One line per scenario and attempt (a busy machine measures the group again), for the
    # pooled slices.
    attempts = 1 + proc.stdout.count("busy machine: measuring")
    lines = proc.stdout.splitlines()
    for name in run:
        assert sum(line.startswith(f"  {name} ") for line in lines) == attempts
    refused = bench("--slices", "0", timeout=60)
    assert refused.returncode == 2 and "--slices must be at least 1" in refused.stderr


def test_slices_pool_into_one_result() -> None:
    quiet = Result(10, 1.0, [0.001] * 10, others=0.0)
    busy = Result(30, 2.0, [0.003] * 30, others=0.4)
    pooled = Result.pooled([quiet, busy])
    assert (pooled.ops, pooled.seconds, pooled.throughput) == (40, 3.0, 40 / 3.0)
    assert pooled.p50 == 0.003 and len(pooled.latencies) == 40
    assert pooled.others == 0.4  # the busiest slice marks the whole


def test_a_window_counts_every_call_that_ends_in_it() -> None:
    # Calls of 0.3 s on a clock of the test's own: a 0.5 s warm-up, then a 1 s window.
    now = [0.0]

    async def call(i: int) -> None:
        now[0] += 0.3

    result = asyncio.run(drive(call, concurrency=1, duration=1.0, warmup=0.5, clock=lambda: now[0]))
    # Ending at 0.6 (begun in the warm-up), 0.9, 1.2 and 1.5: none of the window's time is lost
    # to a call that straddles its start.
    assert (result.ops, result.seconds) == (4, 1.0)
    assert result.latencies == pytest.approx([0.3] * 4)
