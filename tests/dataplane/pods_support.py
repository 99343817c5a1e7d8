"""A graph served by several pods, on 127.0.0.1: each member with a data directory, a client
port and a peer port of its own, one shard map file and one peer key for all, as the operator
gives them to a graph's pods. The members run in this process (`start_pods`) or as
`memorygraph serve` subprocesses (`PodProcess`) that tests stop, kill -9 and start again."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import yaml
from memorygraph.config import ServerConfig, load_config
from memorygraph.server import RunningServer, start_server
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

from .conftest import REPO, ServerProcess, free_port, wait_serving

GRAPH_UID = "5f0c9a52-0d6e-4b7a-9d43-2f1f6c0de001"


@dataclass
class PodLayout:
    """Where the members of a graph of `count` pods live, and the map that places shard s on
    member s mod count (unless `owners` says otherwise)."""

    root: Path
    count: int = 2
    shards: int = 64
    owners: list[int] = field(default_factory=list)
    epoch: int = 1
    shard_epochs: list[int] = field(default_factory=list)  # empty: left out of the map
    graph: str = GRAPH_UID
    ports: list[int] = field(default_factory=list)
    peer_ports: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.owners = self.owners or [s % self.count for s in range(self.shards)]
        self.ports = self.ports or [free_port() for _ in range(self.count)]
        self.peer_ports = self.peer_ports or [free_port() for _ in range(self.count)]
        self.key_file.write_text(secrets.token_urlsafe(32) + "\n")
        self.write_map()

    @property
    def map_file(self) -> Path:
        return self.root / "shard-map.json"

    @property
    def key_file(self) -> Path:
        return self.root / "peer.key"

    def address(self, member: int) -> str:
        return f"127.0.0.1:{self.ports[member]}"

    def peer_address(self, member: int) -> str:
        return f"127.0.0.1:{self.peer_ports[member]}"

    def write_map(self) -> None:
        shard_map = {
            "graph": self.graph,
            "shards": self.shards,
            "epoch": self.epoch,
            "owners": self.owners,
            "members": [
                {"address": self.address(i), "peer": self.peer_address(i)}
                for i in range(self.count)
            ],
        }
        if self.shard_epochs:
            shard_map["shard_epochs"] = self.shard_epochs
        temporary = self.map_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(shard_map))
        os.replace(temporary, self.map_file)  # as the kubelet swaps a ConfigMap's files

    def peer_metadata(self) -> tuple[tuple[str, str], ...]:
        """What the operator presents on a member's peer port."""
        return (("authorization", f"Bearer {self.key_file.read_text().strip()}"),)

    def data_dir(self, member: int) -> Path:
        return self.root / f"pod-{member}"

    def settings(self, member: int, **overrides: Any) -> dict[str, Any]:
        cluster = {
            "map_file": str(self.map_file),
            "member": member,
            "peer_port": self.peer_ports[member],
            "peer_key_file": str(self.key_file),
            **overrides.pop("cluster", {}),
        }
        return {
            "data_dir": self.data_dir(member),
            "host": "127.0.0.1",
            "port": self.ports[member],
            "metrics_port": 0,
            "cluster": cluster,
            **overrides,
        }

    def config(self, member: int, **overrides: Any) -> ServerConfig:
        return load_config(None, self.settings(member, **overrides), environ={})


@contextlib.contextmanager
def running_pods(layout: PodLayout, **overrides: Any) -> Iterator[list[RunningServer]]:
    """Every member of `layout`, in this process, stopped afterwards."""
    started = start_pods(layout, **overrides)
    try:
        yield started
    finally:
        for running in started:
            running.stop(grace=1)


def start_pods(layout: PodLayout, **overrides: Any) -> list[RunningServer]:
    """Every member of `layout`, in this process."""
    started: list[RunningServer] = []
    try:
        for member in range(layout.count):
            started.append(start_server(layout.config(member, **overrides)))
    except BaseException:
        for running in started:
            running.stop(grace=0)
        raise
    return started


class PodProcess(ServerProcess):
    """Member `member` of `layout` as a `memorygraph serve --config` subprocess (stopped,
    killed and read as a `ServerProcess`)."""

    def __init__(self, layout: PodLayout, member: int, **overrides: Any) -> None:
        self.layout, self.member = layout, member
        settings = layout.settings(member, **overrides)
        settings["data_dir"] = str(settings["data_dir"])
        self.config_file = layout.root / f"pod-{member}.yaml"
        self.config_file.write_text(yaml.safe_dump(settings))
        self.log = layout.root / f"pod-{member}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return self.layout.address(self.member)

    def start(self, *, wait: bool = True) -> PodProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO / "dataplane")}
        command = [sys.executable, "-m", "memorygraph", "serve", "--config", str(self.config_file)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        if wait:
            wait_serving(self.address, proc=self.proc)
        return self


def session_nodes(stub: MemoryGraphServiceStub, session_id: str) -> set[str]:
    """The ids of every node of a session, as a member lists them."""
    found: set[str] = set()
    token = ""
    while True:
        page = stub.Query(
            pb.QueryRequest(
                filter=pb.QueryFilter(session_id=session_id), limit=1000, page_token=token
            )
        )
        found.update(n.id for n in page.nodes)
        if not (token := page.next_page_token):
            return found


class Writers:
    """A thread per session adding prompts through `address` until stopped: what was
    acknowledged, and the status codes of the calls that failed while `down` was set."""

    def __init__(self, address: str, sessions: list[str]) -> None:
        self.address = address
        self.acknowledged: dict[str, list[str]] = {s: [] for s in sessions}
        self.failures: dict[str, set[grpc.StatusCode]] = {s: set() for s in sessions}
        self.stopping = threading.Event()
        self.down = threading.Event()
        self.threads = [threading.Thread(target=self._write, args=(s,)) for s in sessions]
        for thread in self.threads:
            thread.start()

    def _write(self, session_id: str) -> None:
        front = MemoryGraphServiceStub(grpc.insecure_channel(self.address))
        while not self.stopping.is_set():
            request = pb.AddPromptRequest(session_id=session_id, content="x")
            try:
                node = front.AddPrompt(request, timeout=2)
            except grpc.RpcError as error:
                if self.down.is_set():
                    self.failures[session_id].add(error.code())
                time.sleep(0.05)
                continue
            self.acknowledged[session_id].append(node.id)

    def counts(self) -> dict[str, int]:
        return {s: len(ids) for s, ids in self.acknowledged.items()}

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(10)
