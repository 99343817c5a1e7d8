"""`python -m memorygraph.bench` (also `make bench`): throughput and latency of the data plane as
ratios to baselines measured in the same run, medians over several runs.

Baselines: a bare gRPC echo server (same grpcio, same server flavour and settings), the `fast`
durability mode, and PostgreSQL recording the same LLM turns with durable settings. Servers run
in child processes; this process is the load generator for all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import grpc

from memorygraph.bench.load import Result, drive
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

# The plugin scenario: the validator and the PII redactor on every new node.
PLUGINS_YAML = """\
version: 1
plugins:
  - name: validator
    type: validator
    config: {max_content_length: 20000, deny_patterns: ["(?i)password\\\\s*[:=]"]}
  - name: pii
    type: redactor
"""
STREAM_NODES = 10_000
STREAM_BATCH = 1000
TURNS_PER_BATCH = 50
CONTENT = "Summarise the conversation so far in three bullet points, please."
# Reference points, not targets: echo servers whose AddPrompt spends this many microseconds of
# Python CPU first, measured beside echo at 32 in flight. They show what a handler's own work
# costs in this server flavour, so the AddPrompt ratio can be read against them. Beside them, an
# echo server that syncs each AddPrompt to a file before answering, at 1 in flight: what waiting
# for this disk adds to a call, for the durable 1-in-flight latency to be read against.
WORK_REFERENCES_US = (60, 240)


@dataclass(frozen=True)
class Target:
    for_target: str  # "memorygraph", "echo"
    address: str


@dataclass
class Reference:
    name: str
    ratio: float
    detail: str


@dataclass
class Check:
    name: str
    ratio: float
    target: float
    higher_is_better: bool
    detail: str

    @property
    def met(self) -> bool:
        return self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server(kind: str, scratch: Path, *extra: str) -> Iterator[Target]:
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "memorygraph.bench.targets",
        kind,
        "--port",
        str(port),
        "--stream-batches",
        str(STREAM_NODES // STREAM_BATCH),
        "--batch-size",
        str(STREAM_BATCH),
        *extra,
    ]
    if kind == "memorygraph":
        args += ["--data-dir", str(scratch / f"data-{port}")]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"{kind} server failed to start")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
        yield Target(kind, f"127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(30)


async def _sessions(stub: MemoryGraphServiceStub, count: int) -> list[str]:
    return [
        (await stub.CreateSession(pb.CreateSessionRequest(title="bench"))).id for _ in range(count)
    ]


async def measure_add_prompt(
    target: Target, concurrency: int, duration: float, warmup: float
) -> Result:
    async with grpc.aio.insecure_channel(target.address) as channel:
        stub = MemoryGraphServiceStub(channel)
        sessions = await _sessions(stub, concurrency)

        async def call(i: int) -> object:
            return await stub.AddPrompt(
                pb.AddPromptRequest(session_id=sessions[i], content=CONTENT, model="bench-model")
            )

        return await drive(call, concurrency=concurrency, duration=duration, warmup=warmup)


async def measure_get_node(
    target: Target, concurrency: int, duration: float, warmup: float
) -> Result:
    async with grpc.aio.insecure_channel(target.address) as channel:
        stub = MemoryGraphServiceStub(channel)
        session = (await _sessions(stub, 1))[0]
        ids = [
            (await stub.AddPrompt(pb.AddPromptRequest(session_id=session, content=CONTENT))).id
            for _ in range(200)
        ]

        async def call(i: int) -> object:
            return await stub.GetNode(pb.GetNodeRequest(node_id=random.choice(ids)))

        return await drive(call, concurrency=concurrency, duration=duration, warmup=warmup)


async def measure_stream_query(target: Target, duration: float, warmup: float) -> Result:
    async with grpc.aio.insecure_channel(
        target.address, options=[("grpc.max_receive_message_length", 64 << 20)]
    ) as channel:
        stub = MemoryGraphServiceStub(channel)
        session = (await _sessions(stub, 1))[0]
        if target.for_target == "memorygraph":
            for _ in range(STREAM_NODES // 1000):
                await stub.BatchCreateNodes(
                    pb.BatchCreateNodesRequest(
                        requests=[
                            pb.CreateNodeRequest(
                                kind=pb.NODE_KIND_PROMPT,
                                session_id=session,
                                content=CONTENT,
                                prompt=pb.PromptDetails(model="m"),
                            )
                            for _ in range(1000)
                        ]
                    )
                )
        request = pb.StreamQueryRequest(
            filter=pb.QueryFilter(session_id=session), batch_size=STREAM_BATCH
        )

        async def call(i: int) -> object:
            count = 0
            async for batch in stub.StreamQuery(request):
                count += len(batch.nodes)
            assert count == STREAM_NODES, count
            return count

        return await drive(
            call, concurrency=1, duration=duration, warmup=warmup, units_per_call=STREAM_NODES
        )


def _turn_batch(session: str) -> pb.IngestBatch:
    items: list[pb.IngestItem] = []
    for t in range(TURNS_PER_BATCH):
        base = len(items)
        items += [
            pb.IngestItem(
                prompt=pb.AddPromptRequest(session_id=session, content=CONTENT, model="m")
            ),
            pb.IngestItem(
                response=pb.AddResponseRequest(
                    prompt_id=f"${base}",
                    content=f"response {t}",
                    model="m",
                    token_usage=pb.TokenUsage(prompt_tokens=12, completion_tokens=30),
                )
            ),
            pb.IngestItem(
                tool_invocation=pb.AddToolInvocationRequest(
                    response_id=f"${base + 1}", tool_name="search"
                )
            ),
        ]
    return pb.IngestBatch(items=items)


async def measure_ingest(
    target: Target, concurrency: int, duration: float, warmup: float
) -> Result:
    async with grpc.aio.insecure_channel(target.address) as channel:
        stub = MemoryGraphServiceStub(channel)
        sessions = await _sessions(stub, concurrency)
        batches = [_turn_batch(s) for s in sessions]
        streams = [stub.Ingest() for _ in range(concurrency)]

        async def call(i: int) -> object:
            await streams[i].write(batches[i])
            return await streams[i].read()

        result = await drive(
            call,
            concurrency=concurrency,
            duration=duration,
            warmup=warmup,
            units_per_call=TURNS_PER_BATCH,
        )
        for stream in streams:
            await stream.done_writing()
        return result


async def measure_single_turn(target: Target, duration: float, warmup: float) -> Result:
    async with grpc.aio.insecure_channel(target.address) as channel:
        stub = MemoryGraphServiceStub(channel)
        session = (await _sessions(stub, 1))[0]

        async def call(i: int) -> object:
            prompt = await stub.AddPrompt(
                pb.AddPromptRequest(session_id=session, content=CONTENT, model="m")
            )
            return await stub.AddResponse(
                pb.AddResponseRequest(
                    prompt_id=prompt.id,
                    content="response",
                    model="m",
                    token_usage=pb.TokenUsage(prompt_tokens=12, completion_tokens=30),
                )
            )

        return await drive(call, concurrency=1, duration=duration, warmup=warmup)


def measure_postgres(
    dsn: str, *, batch: bool, concurrency: int, duration: float, warmup: float
) -> Result:
    """PostgreSQL doing the same turns, one connection per concurrent writer (threads)."""
    from memorygraph.bench.postgres import TurnRecorder

    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + duration
    latencies: list[float] = []
    counted = [0]
    lock = threading.Lock()

    def writer() -> None:
        recorder = TurnRecorder(dsn)
        session = recorder.new_session()
        while (began := time.perf_counter()) < stop_at:
            if batch:
                recorder.record_batch(session, TURNS_PER_BATCH)
            else:
                recorder.record_turn_row_by_row(session)
            ended = time.perf_counter()
            if began >= measure_from and ended <= stop_at:
                with lock:
                    latencies.append(ended - began)
                    counted[0] += TURNS_PER_BATCH if batch else 1
        recorder.close()

    threads = [threading.Thread(target=writer) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Result(counted[0], duration, latencies)


Measurement = Callable[[], Coroutine[Any, Any, Result]]


def one_run(scratch: Path, args: argparse.Namespace, pg_dsn: str | None) -> dict[str, Result]:
    d, w = args.duration, args.warmup
    results: dict[str, Result] = {}

    def run(name: str, measurement: Measurement) -> None:
        results[name] = asyncio.run(measurement())
        print(
            f"  {name:<28} {results[name].throughput:>10.0f}/s   "
            f"p50 {results[name].p50 * 1000:7.2f} ms",
            flush=True,
        )

    plugins = scratch / "plugins.yaml"
    plugins.write_text(PLUGINS_YAML)
    # Every server is up for the whole run and each comparison is measured back to back, so
    # both sides of a ratio meet the same background load on a shared machine.
    with contextlib.ExitStack() as servers:
        echo = servers.enter_context(server("echo", scratch))
        mg = servers.enter_context(server("memorygraph", scratch, "--durability", "durable"))
        fast = servers.enter_context(server("memorygraph", scratch, "--durability", "fast"))
        hooked = servers.enter_context(
            server("memorygraph", scratch, "--plugins-file", str(plugins))
        )
        working = {
            us: servers.enter_context(server("echo", scratch, "--work-us", str(us)))
            for us in WORK_REFERENCES_US
        }
        synced = servers.enter_context(server("echo", scratch, "--sync-dir", str(scratch)))
        for us, worker in working.items():  # just before echo, which the mg runs follow
            run(f"echo_work{us}.add_prompt.32", partial(measure_add_prompt, worker, 32, d, w))
        run("echo.add_prompt.32", lambda: measure_add_prompt(echo, 32, d, w))
        run("mg.add_prompt.32", lambda: measure_add_prompt(mg, 32, d, w))
        run("mg_fast.add_prompt.32", lambda: measure_add_prompt(fast, 32, d, w))
        run("mg_plugins.add_prompt.32", lambda: measure_add_prompt(hooked, 32, d, w))
        run("echo_sync.add_prompt.1", lambda: measure_add_prompt(synced, 1, d, w))
        run("echo.add_prompt.1", lambda: measure_add_prompt(echo, 1, d, w))
        run("mg.add_prompt.1", lambda: measure_add_prompt(mg, 1, d, w))
        run("echo.get_node.32", lambda: measure_get_node(echo, 32, d, w))
        run("mg.get_node.32", lambda: measure_get_node(mg, 32, d, w))
        run("echo.stream_query", lambda: measure_stream_query(echo, d, w))
        run("mg.stream_query", lambda: measure_stream_query(mg, d, w))
        run("mg.ingest", lambda: measure_ingest(mg, args.writers, d, w))
        if pg_dsn is not None:

            async def pg(batch: bool, concurrency: int) -> Result:
                return await asyncio.to_thread(
                    measure_postgres,
                    pg_dsn,
                    batch=batch,
                    concurrency=concurrency,
                    duration=d,
                    warmup=w,
                )

            run("pg.ingest", lambda: pg(True, args.writers))
        run("mg.single_turn", lambda: measure_single_turn(mg, d, w))
        if pg_dsn is not None:
            run("pg.single_turn", lambda: pg(False, 1))
    return results


def _throughput(result: Result) -> float:
    return result.throughput


def _p50(result: Result) -> float:
    return result.p50


Runs = list[dict[str, Result]]


def _median(runs: Runs, key: str, metric: Callable[[Result], float]) -> float:
    return statistics.median(metric(run[key]) for run in runs)


def _ratio(runs: Runs, subject: str, baseline: str, metric: Callable[[Result], float]) -> float:
    """The median of the runs' own ratios: both sides of one are measured back to back."""
    return statistics.median(metric(run[subject]) / metric(run[baseline]) for run in runs)


def checks(runs: Runs) -> list[Check]:
    """Each ratio is the median of the runs' own ratios (both sides of one ratio are measured
    back to back in a run); the rates shown beside it are medians too."""

    def ratio(subject: str, baseline: str, metric: Callable[[Result], float]) -> float:
        return _ratio(runs, subject, baseline, metric)

    def tput(key: str) -> float:
        return _median(runs, key, _throughput)

    def p50(key: str) -> float:
        return _median(runs, key, _p50)

    found = [
        Check(
            "AddPrompt, 32 in flight: throughput vs echo",
            ratio("mg.add_prompt.32", "echo.add_prompt.32", _throughput),
            0.80,
            True,
            f"{tput('mg.add_prompt.32'):.0f}/s vs {tput('echo.add_prompt.32'):.0f}/s",
        ),
        Check(
            "AddPrompt, 1 in flight: p50 latency vs echo",
            ratio("mg.add_prompt.1", "echo.add_prompt.1", _p50),
            1.25,
            False,
            f"{p50('mg.add_prompt.1') * 1e3:.2f} ms vs {p50('echo.add_prompt.1') * 1e3:.2f} ms",
        ),
        Check(
            "GetNode, 32 in flight: throughput vs echo",
            ratio("mg.get_node.32", "echo.get_node.32", _throughput),
            0.85,
            True,
            f"{tput('mg.get_node.32'):.0f}/s vs {tput('echo.get_node.32'):.0f}/s",
        ),
        Check(
            "StreamQuery 10k nodes, batched: nodes/s vs echo stream",
            ratio("mg.stream_query", "echo.stream_query", _throughput),
            0.60,
            True,
            f"{tput('mg.stream_query'):.0f}/s vs {tput('echo.stream_query'):.0f}/s",
        ),
        Check(
            "validator + redactor vs no plugins, AddPrompt 32 in flight",
            ratio("mg_plugins.add_prompt.32", "mg.add_prompt.32", _throughput),
            0.85,
            True,
            f"{tput('mg_plugins.add_prompt.32'):.0f}/s vs {tput('mg.add_prompt.32'):.0f}/s",
        ),
        Check(
            "durable vs fast, AddPrompt 32 in flight",
            ratio("mg.add_prompt.32", "mg_fast.add_prompt.32", _throughput),
            0.70,
            True,
            f"{tput('mg.add_prompt.32'):.0f}/s vs {tput('mg_fast.add_prompt.32'):.0f}/s",
        ),
    ]
    if all("pg.ingest" in run for run in runs):
        found += [
            Check(
                "Turns via Ingest vs PostgreSQL batches (turns/s)",
                ratio("mg.ingest", "pg.ingest", _throughput),
                1.5,
                True,
                f"{tput('mg.ingest'):.0f}/s vs {tput('pg.ingest'):.0f}/s",
            ),
            Check(
                "Single turn (AddPrompt+AddResponse) p50 vs PostgreSQL rows",
                ratio("mg.single_turn", "pg.single_turn", _p50),
                1.5,
                False,
                f"{p50('mg.single_turn') * 1e3:.2f} ms vs {p50('pg.single_turn') * 1e3:.2f} ms",
            ),
        ]
    return found


def references(runs: Runs) -> list[Reference]:
    """Echo with a handler's worth of CPU per call vs plain echo (AddPrompt throughput, 32 in
    flight), and echo with a synced write per call vs plain echo (AddPrompt p50, 1 in flight)."""
    found = []
    for us in WORK_REFERENCES_US:
        key = f"echo_work{us}.add_prompt.32"
        found.append(
            Reference(
                f"echo + {us} us of Python CPU per AddPrompt, 32 in flight: throughput",
                _ratio(runs, key, "echo.add_prompt.32", _throughput),
                f"{_median(runs, key, _throughput):.0f}/s",
            )
        )
    found.append(
        Reference(
            "echo + an fdatasync per AddPrompt, 1 in flight: p50 latency",
            _ratio(runs, "echo_sync.add_prompt.1", "echo.add_prompt.1", _p50),
            f"{_median(runs, 'echo_sync.add_prompt.1', _p50) * 1e3:.2f} ms",
        )
    )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m memorygraph.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--runs", type=int, default=3, help="runs to take the median of (3)")
    parser.add_argument(
        "--duration", type=float, default=5.0, help="measured seconds per scenario (5)"
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first (1)")
    parser.add_argument(
        "--writers",
        type=int,
        default=2,
        help="concurrent Ingest streams / PostgreSQL connections (2)",
    )
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL baseline")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="memorygraph-bench-") as tmp:
        scratch = Path(tmp)
        os.chmod(scratch, 0o755)
        pg_context: Any = None
        pg_dsn = None
        if not args.no_postgres:
            from memorygraph.bench.postgres import TurnRecorder, postgres_server

            pg_context = postgres_server(scratch / "pg", free_port())
            pg_dsn = pg_context.__enter__()
            schema = TurnRecorder(pg_dsn)
            schema.create_schema()
            schema.close()
        try:
            runs = []
            for number in range(1, args.runs + 1):
                print(f"run {number}/{args.runs}", flush=True)
                runs.append(one_run(scratch, args, pg_dsn))
        finally:
            if pg_context is not None:
                pg_context.__exit__(None, None, None)

    found = checks(runs)
    print(f"\nmedians of {args.runs} runs, {args.duration:g}s each:")
    for check in found:
        relation = ">=" if check.higher_is_better else "<="
        verdict = "met" if check.met else "MISSED"
        print(
            f"  {check.name:<58} {check.ratio:6.2f} (target {relation} {check.target:.2f}) "
            f"{verdict}   [{check.detail}]"
        )
    found_references = references(runs)
    print("reference points (not targets), vs echo in the same runs:")
    for reference in found_references:
        print(f"  {reference.name:<58} {reference.ratio:6.2f}   [{reference.detail}]")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "runs": [
                        {
                            k: {"throughput": r.throughput, "p50": r.p50, "p99": r.percentile(0.99)}
                            for k, r in run.items()
                        }
                        for run in runs
                    ],
                    "checks": [
                        {"name": c.name, "ratio": c.ratio, "target": c.target, "met": c.met}
                        for c in found
                    ],
                    "references": [{"name": r.name, "ratio": r.ratio} for r in found_references],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
