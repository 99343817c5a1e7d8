"""A webhook plugin service for MemoryGraph, using only the standard library.

    python docs/examples/webhook_plugin.py --port 8089 --token s3cret

Point a plugin at it (plugins.yaml), with the token in the plugin's own secrets directory
(`<plugin_secrets_dir>/policy/token`) and, since it listens on loopback, the server's
`plugins_allowed_networks: ["127.0.0.1/32"]`:

    version: 1
    plugins:
      - name: policy
        type: webhook
        hooks: [before_create_node, after_create_session]
        failure_policy: Ignore
        timeout_seconds: 2
        config: {url: "http://127.0.0.1:8089/hook", token_file: token}

It refuses prompts that mention a blocked word, tags every node it lets through with
`policy=checked`, and logs after-hook notifications.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_VERSION = "memorygraph.io/plugins/v1"


def decide(call: dict[str, Any], blocked: list[str]) -> dict[str, Any]:
    """The plugin's policy: the answer for one hook call."""
    if not call["hook"].startswith("before_"):
        print(
            f"notified: {call['hook']} {call['subject']} {call['node_id'] or call['session_id']}",
            file=sys.stderr,
        )
        return {"allow": True}
    content = (call.get("content") or "").lower()
    for word in blocked:
        if word in content:
            return {"allow": False, "reason": f"mentions {word!r}"}
    return {"allow": True, "patch": {"metadata": {**call["metadata"], "policy": "checked"}}}


def make_handler(token: str, blocked: list[str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: MemoryGraph reuses its connections

        def do_POST(self) -> None:
            if token and self.headers.get("Authorization") != f"Bearer {token}":
                self._reply(401, {"error": "unauthorized"})
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if body.get("apiVersion") != API_VERSION:
                self._reply(400, {"error": f"expected apiVersion {API_VERSION}"})
                return
            self._reply(200, decide(body["call"], blocked))

        def _reply(self, status: int, answer: dict[str, Any]) -> None:
            raw = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="Example MemoryGraph webhook plugin")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--token", default="", help="bearer token callers must send")
    parser.add_argument(
        "--block",
        action="append",
        default=["password"],
        help="word that gets a prompt refused (repeatable)",
    )
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args.token, args.block))
    print(f"listening on http://{args.host}:{server.server_address[1]}/hook", flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends it quietly
        server.serve_forever()


if __name__ == "__main__":
    main()
