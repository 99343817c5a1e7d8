#!/usr/bin/env python3
"""How long a move between pod members pauses a graph's writes, measured.

Starts two members of one graph as `memorygraph serve` processes on 127.0.0.1 (each with a
data directory of its own, one shard map and one peer key, as the operator gives them to a
graph's pods), fills the graph through member 0, and then moves shards of member 0 to member
1 with `TakeShard` on member 1's peer port, one at a time, while a client adds prompts through
member 0 with one call in flight. It reports:

* per move: how long the fence paused every member's writes (`fenced_seconds`, as the target
  measured it), the keys copied, and how long the whole move took;
* the client's AddPrompt latency before the moves and during them (p50, p99, max), and the
  calls refused while a move ran;
* the machine's load average before and after.

Example::

    .venv/bin/python hack/pod_move_pause.py --moves 8 --out /tmp/move-pause.json

Progress goes to stderr; the JSON result to stdout or ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "dataplane"))

from memorygraph.model import parse_id  # noqa: E402
from memorygraph.store.shards import Shards  # noqa: E402
from memorygraph.v1 import graph_pb2 as pb  # noqa: E402
from memorygraph.v1 import workers_pb2 as wpb  # noqa: E402
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub  # noqa: E402
from memorygraph.v1.workers_pb2_grpc import WorkerPeerStub  # noqa: E402

SHARDS = 64


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _start(root: Path) -> tuple[list[subprocess.Popen[bytes]], list[str], list[str], str]:
    ports, peers = [_port(), _port()], [_port(), _port()]
    key = secrets.token_urlsafe(32)
    (root / "peer.key").write_text(key + "\n")
    shard_map = {
        "graph": "pod-move-pause",
        "shards": SHARDS,
        "epoch": 1,
        "owners": [s % 2 for s in range(SHARDS)],
        "members": [
            {"address": f"127.0.0.1:{ports[m]}", "peer": f"127.0.0.1:{peers[m]}"} for m in (0, 1)
        ],
    }
    (root / "map.json").write_text(json.dumps(shard_map))
    procs = []
    for member in (0, 1):
        settings = {
            "data_dir": str(root / f"pod-{member}"),
            "host": "127.0.0.1",
            "port": ports[member],
            "metrics_port": 0,
            "cluster": {
                "map_file": str(root / "map.json"),
                "member": member,
                "peer_port": peers[member],
                "peer_key_file": str(root / "peer.key"),
            },
        }
        config = root / f"pod-{member}.yaml"
        config.write_text(yaml.safe_dump(settings))
        log = (root / f"pod-{member}.log").open("ab")
        env = {**os.environ, "PYTHONPATH": str(REPO / "dataplane")}
        command = [sys.executable, "-m", "memorygraph", "serve", "--config", str(config)]
        procs.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env))
    addresses = [f"127.0.0.1:{p}" for p in ports]
    for address in addresses:
        grpc.channel_ready_future(grpc.insecure_channel(address)).result(timeout=60)
    return procs, addresses, [f"127.0.0.1:{p}" for p in peers], key


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "calls": len(ordered),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moves", type=int, default=8, help="shards moved, one at a time")
    parser.add_argument("--sessions", type=int, default=64, help="sessions the graph holds")
    parser.add_argument("--prompts", type=int, default=40, help="prompts per session")
    parser.add_argument("--out", type=Path, help="write the JSON result here (else stdout)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="pod-move-pause-") as tmp:
        procs, addresses, peers, key = _start(Path(tmp))
        try:
            result = _measure(args, addresses, peers, key)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)
    result["load_before"] = [round(x, 2) for x in load_before]
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)
    return 0


def _measure(
    args: argparse.Namespace, addresses: list[str], peers: list[str], key: str
) -> dict[str, object]:
    stub = MemoryGraphServiceStub(grpc.insecure_channel(addresses[0]))
    _say(f"filling {args.sessions} sessions with {args.prompts} prompts each")
    sessions = [stub.CreateSession(pb.CreateSessionRequest()).id for _ in range(args.sessions)]
    for session in sessions:
        for _ in range(args.prompts):
            stub.AddPrompt(pb.AddPromptRequest(session_id=session, content="x" * 500))
    of = Shards(SHARDS)
    held = sorted(
        {of.of_id(parse_id(s, "id")) for s in sessions if of.of_id(parse_id(s, "id")) % 2 == 0}
    )
    latencies: list[tuple[float, float]] = []  # (when, seconds)
    refused: list[tuple[float, str]] = []
    stop = threading.Event()

    def write() -> None:
        client = MemoryGraphServiceStub(grpc.insecure_channel(addresses[0]))
        i = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                client.AddPrompt(
                    pb.AddPromptRequest(session_id=sessions[i % len(sessions)], content="w"),
                    timeout=10,
                )
                latencies.append((started, time.monotonic() - started))
            except grpc.RpcError as error:
                refused.append((started, error.code().name))
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(3)
    baseline_end = time.monotonic()
    target = WorkerPeerStub(grpc.insecure_channel(peers[1]))
    metadata = (("authorization", f"Bearer {key}"),)
    moves = []
    for shard in held[: args.moves]:
        started = time.monotonic()
        taken = target.TakeShard(
            wpb.PeerTakeShardRequest(shard=shard), metadata=metadata, timeout=120
        )
        moves.append(
            {
                "shard": shard,
                "fenced_ms": round(taken.fenced_seconds * 1000, 2),
                "copied_keys": taken.copied_keys,
                "move_seconds": round(time.monotonic() - started, 3),
            }
        )
        _say(f"moved shard {shard}: fenced {moves[-1]['fenced_ms']} ms, {taken.copied_keys} keys")
        time.sleep(0.5)
    moves_end = time.monotonic()
    stop.set()
    writer.join(30)
    fences = [m["fenced_ms"] for m in moves]
    return {
        "moves": moves,
        "fenced_ms": {
            "p50": round(statistics.median(fences), 2) if fences else None,
            "max": max(fences) if fences else None,
        },
        "add_prompt_before": _quantiles([s for t, s in latencies if t < baseline_end]),
        "add_prompt_during": _quantiles([s for t, s in latencies if baseline_end <= t < moves_end]),
        "refused_during": sorted({code for t, code in refused if t >= baseline_end}),
        "refused_calls": len(refused),
    }


if __name__ == "__main__":
    sys.exit(main())
