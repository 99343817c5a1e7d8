"""The data plane's HTTP endpoint on its own port: ``/metrics`` (the default Prometheus
registry), ``/healthz`` (the process can still serve) and ``/readyz`` (the store is open and
serving).

It serves what is registered and the readiness and liveness it is told; it defines no metrics
and decides nothing about readiness itself. Anyone who reaches the port can connect, so it
holds at most `max_connections` at once (a new one beyond them closes the oldest) and drops a
connection that sends nothing for `timeout` seconds.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["MetricsServer"]


MAX_CONNECTIONS = 32
TIMEOUT_SECONDS = 5.0


class _BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, up to `max_connections`. A connection beyond them closes the
    oldest one: clients that hold connections without finishing a request (slowly, or not at
    all) cannot keep a probe out for longer than it takes to connect."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any, max_connections: int) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(max_connections)
        self._open: OrderedDict[socket.socket, None] = OrderedDict()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with self._open_lock:
                oldest = next(iter(self._open), None)
            if oldest is not None:
                with contextlib.suppress(OSError):
                    oldest.shutdown(socket.SHUT_RDWR)  # its thread ends and frees a slot
            if not self._slots.acquire(timeout=2.0):
                self.shutdown_request(request)
                return
        with self._open_lock:
            self._open[request] = None
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away or was closed for another: nothing worth a traceback.
        return

    def _release(self, request: Any) -> None:
        with self._open_lock:
            self._open.pop(request, None)
        self._slots.release()


class MetricsServer:
    """Serves /metrics, /healthz and /readyz on its own port, in a daemon thread.

    `ready` is set once the server serves; `alive` is cleared while it cannot (its RPC workers
    are wedged): then both probes answer 503."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_connections: int = MAX_CONNECTIONS,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.ready = threading.Event()
        self.alive = threading.Event()
        self.alive.set()
        self.collect_hook: Any = None
        server = self
        io_timeout = timeout

        class Handler(BaseHTTPRequestHandler):
            timeout = io_timeout  # on the socket: a client that sends nothing is dropped

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    if server.collect_hook is not None:
                        server.collect_hook()
                    self._reply(200, generate_latest(), CONTENT_TYPE_LATEST)
                elif not server.alive.is_set() and path in ("/healthz", "/readyz"):
                    self._reply(503, b"unhealthy: no RPC worker is free\n")
                elif path == "/healthz":
                    self._reply(200, b"ok\n")
                elif path == "/readyz":
                    if server.ready.is_set():
                        self._reply(200, b"ready\n")
                    else:
                        self._reply(503, b"not ready: opening the store\n")
                else:
                    self._reply(404, b"not found\n")

            def _reply(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._http = _BoundedHTTPServer((host, port), Handler, max_connections)
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="metrics-http", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
