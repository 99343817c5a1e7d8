"""The data plane's HTTP endpoint on its own port: ``/metrics`` (the default Prometheus
registry), ``/healthz`` (the process is alive) and ``/readyz`` (the store is open and serving).

It serves what is registered and the readiness it is told; it defines no metrics and decides
nothing about readiness itself.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["MetricsServer"]


class MetricsServer:
    """Serves /metrics, /healthz and /readyz on its own port, in a daemon thread."""

    def __init__(self, host: str, port: int) -> None:
        self.ready = threading.Event()
        self.collect_hook: Any = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    if server.collect_hook is not None:
                        server.collect_hook()
                    self._reply(200, generate_latest(), CONTENT_TYPE_LATEST)
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

        self._http = ThreadingHTTPServer((host, port), Handler)
        self._http.daemon_threads = True
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="metrics-http", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
