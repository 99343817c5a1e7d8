"""Helpers of the plugin tests: a webhook service's state, raw services that answer badly,
plugins.yaml files and servers started with them, tokens in a plugin's own secrets directory,
a connected stub."""

from __future__ import annotations

import socket
import threading
import time
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
# The test services listen on 127.0.0.1, which webhooks reach only when the server allows it.
LOOPBACK: dict[str, Any] = {"plugins_allowed_networks": ["127.0.0.1/32"]}
ALLOW = b'{"allow": true}'


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


def webhook_plugin(
    name: str, url: str, hooks: list[str], token_file: str | None = None, **fields: Any
) -> dict[str, Any]:
    """A webhook's entry of plugins.yaml: `fields` (order, timeout_seconds, failure_policy)
    beside its name and hooks, and `token_file`, when given, in its config with the URL."""
    config = {"url": url} if token_file is None else {"url": url, "token_file": token_file}
    return {"name": name, "type": "webhook", "hooks": hooks, **fields, "config": config}


def serve_plugins(
    start: Start, tmp_path: Path, *plugins: dict[str, Any], **settings: Any
) -> RunningServer:
    """A server started with `settings` and `plugins`, written to `<tmp_path>/plugins.yaml`."""
    return start(plugins_file=write_plugins(tmp_path / "plugins.yaml", *plugins), **settings)


def connect(server: RunningServer) -> MemoryGraphServiceStub:
    return MemoryGraphServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))


def write_token(secrets_dir: Path, plugin: str, token: str) -> Path:
    """The plugin's token where the operator mounts its Secret: `<secrets_dir>/<plugin>/token`."""
    path = secrets_dir / plugin / "token"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(token)
    return path


class RawWebhook:
    """A webhook service on 127.0.0.1 written at the socket level, for answers no proper HTTP
    server gives: `respond(connection)` runs once the request is read, on its own thread."""

    def __init__(self, respond: Callable[[socket.socket], None]) -> None:
        self.respond = respond
        self.requests = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/hook"

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            try:
                while _read_request(connection):
                    self.requests += 1
                    self.respond(connection)
            except OSError:
                pass  # the client gave up on us: what these services are for

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()


def _read_request(connection: socket.socket) -> bool:
    """Read one HTTP request with a Content-Length body; False when the client closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return True


Respond = Callable[[socket.socket], None]


def dripping(where: str) -> Respond:
    """A valid answer sent one byte every 0.2 s, in its headers or in its body: 20 s for the
    whole of it, and never 0.2 s without a byte."""
    padding = b" " * 100
    if where == "headers":
        slow = b"HTTP/1.1 200 OK\r\nX-Padding: " + padding + b"\r\n"
        before, after = b"", b"Content-Length: %d\r\n\r\n%b" % (len(ALLOW), ALLOW)
    else:
        slow = ALLOW + padding
        before = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(slow)
        after = b""

    def respond(connection: socket.socket) -> None:
        connection.sendall(before)
        for byte in slow:
            connection.sendall(bytes([byte]))
            time.sleep(0.2)
        connection.sendall(after)

    return respond


def flooding(declare: bool, size: int = 64 << 20) -> Respond:
    """A valid answer followed by `size` bytes of blanks as fast as they go, its length
    declared or not."""
    blanks = b" " * (1 << 20)

    def respond(connection: socket.socket) -> None:
        if declare:
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(ALLOW) + size)
        else:
            head = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
        connection.sendall(head + ALLOW)
        for _ in range(size // len(blanks)):
            connection.sendall(blanks)
        connection.close()

    return respond
