"""The workloads the benchmark measures: each one drives a server under test (or PostgreSQL)
through `load.drive` and returns its `Result`.

What a workload sends and how many calls it keeps in flight lives here; which servers are
started, in what order the workloads run and what their results mean do not.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from memorygraph.bench.load import Result, drive
from memorygraph.model import parse_id
from memorygraph.store.rocks import reused_a_log_file
from memorygraph.store.shards import Shards
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

__all__ = [
    "CONTENT",
    "MODEL",
    "STREAM_BATCH",
    "STREAM_NODES",
    "TURNS_PER_BATCH",
    "Measurement",
    "Sliceable",
    "Target",
    "measure_add_prompt",
    "measure_add_prompt_routed",
    "measure_get_node",
    "measure_get_node_forwarded",
    "measure_ingest",
    "measure_list_sessions",
    "measure_postgres",
    "measure_single_turn",
    "measure_stream_query",
    "measure_two_call_turn",
    "roll_wal_over",
]

STREAM_NODES = 10_000
LISTED_SESSIONS = 10_000
STREAM_BATCH = 1000
TURNS_PER_BATCH = 50
# What the prompts the scenarios write say, and the model they name: the echo server answers
# with nodes holding the same, so that both sides send messages of one size.
CONTENT = "Summarise the conversation so far in three bullet points, please."
MODEL = "bench-model"


@dataclass(frozen=True)
class Target:
    """A running server under test: what it is, where it listens and (MemoryGraph) where it
    keeps its data."""

    for_target: str  # "memorygraph", "echo"
    address: str
    data_dir: Path | None = None


Measurement = Callable[[], Coroutine[Any, Any, Result]]
# A scenario's measurement for a given duration and warm-up (seconds).
Sliceable = Callable[[float, float], Coroutine[Any, Any, Result]]

# What a scenario stored on a server to measure against (its nodes' ids, its session), by
# scenario and server address: measured again (another run, another slice), a scenario reuses
# it rather than storing as much again, so every measurement meets the same amount of data.
_PREPARED: dict[tuple[str, str], Any] = {}


# Filler prompts that roll a store's write-ahead log over (`roll_wal_over`), sent in batches
# of a session each: long prompts, each about twice its size in the log (the node and its
# event), short enough for the plugin scenario's validator (at most 20,000 characters).
FILLER_CHARS = 19_000
FILLERS_PER_BATCH = 40


def _reusing_logs(data_dir: Path) -> bool:
    """Whether every store under `data_dir` (a worker's each in a directory of its own) has
    written to a reused log file since it opened."""
    stores = {log.parent for log in data_dir.rglob("LOG")}
    return bool(stores) and all(reused_a_log_file(store) for store in stores)


def roll_wal_over(target: Target, limit_bytes: int) -> int:
    """Write filler prompts into `target` until every store under its data directory writes
    its write-ahead log into a reused file, as a store in service does (the first log file
    after a start is a new one, whose syncs cost more); returns the bytes of content written.
    RuntimeError if `limit_bytes` were written first."""
    if target.data_dir is None:
        raise ValueError(f"{target.for_target} at {target.address} has no data directory")
    written = 0
    with grpc.insecure_channel(target.address) as channel:
        stub = MemoryGraphServiceStub(channel)
        while not _reusing_logs(target.data_dir):
            if written >= limit_bytes:
                raise RuntimeError(
                    f"{target.address}: no reused write-ahead log file after {written} bytes"
                )
            session = stub.CreateSession(pb.CreateSessionRequest(title="filler")).id
            # Random text compresses as little as a real prompt does, or less.
            content = base64.b64encode(os.urandom(FILLER_CHARS * 3 // 4)).decode()
            prompt = pb.CreateNodeRequest(
                kind=pb.NODE_KIND_PROMPT, session_id=session, content=content
            )
            batch = pb.BatchCreateNodesRequest(requests=[prompt] * FILLERS_PER_BATCH)
            stub.BatchCreateNodes(batch, timeout=60)
            written += FILLERS_PER_BATCH * len(content)
    return written


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
                pb.AddPromptRequest(session_id=sessions[i], content=CONTENT, model=MODEL)
            )

        return await drive(call, concurrency=concurrency, duration=duration, warmup=warmup)


async def measure_add_prompt_routed(
    target: Target, concurrency: int, duration: float, warmup: float
) -> Result:
    """AddPrompt sent straight to each session's worker, found with GetShardMap (a client
    that routes; one process is one worker at the address called)."""
    async with grpc.aio.insecure_channel(target.address) as channel:
        stub = MemoryGraphServiceStub(channel)
        shard_map = await stub.GetShardMap(pb.GetShardMapRequest())
        sessions = await _sessions(stub, concurrency)
        shards = Shards(shard_map.shards)
        async with contextlib.AsyncExitStack() as channels:
            stubs = [stub]
            if shard_map.workers[0]:
                stubs = [
                    MemoryGraphServiceStub(
                        await channels.enter_async_context(grpc.aio.insecure_channel(address))
                    )
                    for address in shard_map.workers
                ]
            owners = [
                stubs[shard_map.owners[shards.of_id(parse_id(s, "id"))] if len(stubs) > 1 else 0]
                for s in sessions
            ]

            async def call(i: int) -> object:
                return await owners[i].AddPrompt(
                    pb.AddPromptRequest(session_id=sessions[i], content=CONTENT, model="bench")
                )

            return await drive(call, concurrency=concurrency, duration=duration, warmup=warmup)


async def measure_get_node(
    target: Target, concurrency: int, duration: float, warmup: float
) -> Result:
    async with grpc.aio.insecure_channel(target.address) as channel:
        stub = MemoryGraphServiceStub(channel)
        ids = _PREPARED.get(("get_node", target.address))
        if ids is None:
            session = (await _sessions(stub, 1))[0]
            ids = [
                (
                    await stub.AddPrompt(
                        pb.AddPromptRequest(session_id=session, content=CONTENT, model=MODEL)
                    )
                ).id
                for _ in range(200)
            ]
            _PREPARED["get_node", target.address] = ids

        async def call(i: int) -> object:
            return await stub.GetNode(pb.GetNodeRequest(node_id=random.choice(ids)))

        return await drive(call, concurrency=concurrency, duration=duration, warmup=warmup)


async def measure_get_node_forwarded(
    target: Target, forwarded: bool, duration: float, warmup: float
) -> Result:
    """GetNode at 1 in flight sent to worker 0's own address, of nodes on worker 0 (direct) or
    on another worker (`forwarded`: worker 0 passes each call on to the owner). `target` has
    two workers or more."""
    async with grpc.aio.insecure_channel(target.address) as channel:
        stub = MemoryGraphServiceStub(channel)
        shard_map = await stub.GetShardMap(pb.GetShardMapRequest())
        shards = Shards(shard_map.shards)
        ids: list[str] = []
        while len(ids) < 50:
            session = (await _sessions(stub, 1))[0]
            if (shard_map.owners[shards.of_id(parse_id(session, "id"))] != 0) == forwarded:
                for _ in range(4):
                    request = pb.AddPromptRequest(session_id=session, content=CONTENT)
                    ids.append((await stub.AddPrompt(request)).id)
        async with grpc.aio.insecure_channel(shard_map.workers[0]) as first:
            worker = MemoryGraphServiceStub(first)

            async def call(i: int) -> object:
                return await worker.GetNode(pb.GetNodeRequest(node_id=random.choice(ids)))

            return await drive(call, concurrency=1, duration=duration, warmup=warmup)


async def _stream_session(stub: MemoryGraphServiceStub, target: Target) -> str:
    """A session of STREAM_NODES prompts (on an echo server, any session: it streams its own)."""
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
                            prompt=pb.PromptDetails(model=MODEL),
                        )
                        for _ in range(1000)
                    ]
                )
            )
    return session


async def measure_stream_query(target: Target, duration: float, warmup: float) -> Result:
    async with grpc.aio.insecure_channel(
        target.address, options=[("grpc.max_receive_message_length", 64 << 20)]
    ) as channel:
        stub = MemoryGraphServiceStub(channel)
        session = _PREPARED.get(("stream_query", target.address))
        if session is None:
            session = await _stream_session(stub, target)
            _PREPARED["stream_query", target.address] = session
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


async def measure_list_sessions(target: Target, duration: float, warmup: float) -> Result:
    """The first page (the default 100) of ListSessions over LISTED_SESSIONS sessions, one
    call at a time: with many shards, every shard's part of the session index is read and
    merged."""
    async with grpc.aio.insecure_channel(target.address) as channel:
        stub = MemoryGraphServiceStub(channel)
        if ("list_sessions", target.address) not in _PREPARED:
            stream = stub.Ingest()
            for _ in range(LISTED_SESSIONS // 1000):
                items = [pb.IngestItem(session=pb.CreateSessionRequest(title="s"))] * 1000
                await stream.write(pb.IngestBatch(items=items))
                await stream.read()
            await stream.done_writing()
            _PREPARED["list_sessions", target.address] = LISTED_SESSIONS
        request = pb.ListSessionsRequest()

        async def call(i: int) -> object:
            page = await stub.ListSessions(request)
            assert len(page.sessions) == 100, len(page.sessions)
            return page

        return await drive(call, concurrency=1, duration=duration, warmup=warmup)


async def measure_single_turn(target: Target, duration: float, warmup: float) -> Result:
    """One turn at a time, as the docs tell an application to record one: RecordTurn with the
    prompt and the response (with its token usage)."""
    async with grpc.aio.insecure_channel(target.address) as channel:
        stub = MemoryGraphServiceStub(channel)
        session = (await _sessions(stub, 1))[0]
        request = pb.RecordTurnRequest(
            prompt=pb.AddPromptRequest(session_id=session, content=CONTENT, model="m"),
            response=pb.AddResponseRequest(
                content="response",
                model="m",
                token_usage=pb.TokenUsage(prompt_tokens=12, completion_tokens=30),
            ),
        )

        async def call(i: int) -> object:
            return await stub.RecordTurn(request)

        return await drive(call, concurrency=1, duration=duration, warmup=warmup)


async def measure_two_call_turn(target: Target, duration: float, warmup: float) -> Result:
    """The same turn as two calls, AddPrompt then AddResponse (a reference point)."""
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
    dsn: str,
    *,
    batch: bool,
    concurrency: int,
    duration: float,
    warmup: float,
    prompts: bool = False,
) -> Result:
    """PostgreSQL doing the same turns, one connection per concurrent writer (threads); with
    `prompts`, what AddPrompt writes instead (the node and its two edges, one commit each)."""
    from memorygraph.bench.postgres import TurnRecorder

    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + duration
    latencies: list[float] = []
    counted = [0]
    failures: list[BaseException] = []
    lock = threading.Lock()

    def writer() -> None:
        try:
            write()
        except BaseException as exc:  # a writer short would flatter MemoryGraph: no result
            failures.append(exc)

    def write() -> None:
        recorder = TurnRecorder(dsn)
        session = recorder.new_session()
        while (began := time.perf_counter()) < stop_at:
            if prompts:
                recorder.record_prompt(session)
            elif batch:
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
    if failures:
        raise RuntimeError(f"{len(failures)} PostgreSQL writers failed: {failures[0]}")
    return Result(counted[0], duration, latencies)
