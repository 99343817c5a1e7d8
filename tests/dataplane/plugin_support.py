"""Helpers of the plugin tests: a webhook service's state, plugins.yaml files, a connected stub."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import yaml
from memorygraph.server import RunningServer
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

Start = Callable[..., RunningServer]


@dataclass
class Webhook:
    """A real HTTP plugin service on 127.0.0.1 whose answers the test chooses."""

    answer: Callable[[dict[str, Any]], tuple[int, Any]] = lambda body: (200, {"allow": True})
    calls: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    delay: float = 0.0
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def hooks_seen(self) -> set[str]:
        return {c["call"]["hook"] for c in list(self.calls)}


def write_plugins(path: Path, *plugins: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"version": 1, "plugins": list(plugins)}))
    return path


def connect(server: RunningServer) -> MemoryGraphServiceStub:
    return MemoryGraphServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
