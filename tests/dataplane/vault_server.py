"""A Data-Vault on 127.0.0.1 implementing the REST contract of docs/archival.md, for tests.

Archives are kept as files under a directory, so what the vault holds survives the test
process killing the archive job. `fail_next(n)` makes the next n API calls answer 503.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

POLICIES = {"Standard": 365, "PCI": 1095, "HIPAA": 2555, "GDPR": 2555, "SOC2": 2555}


class _Handler(BaseHTTPRequestHandler):
    server: _VaultServer

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: Any = None) -> None:
        raw = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"null")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        vault = self.server.vault
        vault.calls.append((method, url.path))
        if url.path == "/health":
            return self._answer(200, {"status": "ok"})
        if self.headers.get("Authorization") != f"Bearer {vault.token}":
            return self._answer(401, {"error": "missing or wrong bearer token"})
        with vault.lock:
            if vault._failures:
                vault._failures -= 1
                return self._answer(503, {"error": "vault busy"})
        status, body = vault.route(method, url.path, parse_qs(url.query), self)
        self._answer(status, body)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


class _VaultServer(ThreadingHTTPServer):
    vault: DataVault


class DataVault:
    def __init__(self, root: Path, token: str = "vault-token") -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []
        self._failures = 0
        self.server = _VaultServer(("127.0.0.1", 0), _Handler)
        self.server.vault = self
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> DataVault:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, count: int) -> None:
        with self.lock:
            self._failures = count

    # -- storage ------------------------------------------------------------------------------

    def _path(self, archive_id: str) -> Path:
        if not archive_id or "/" in archive_id or archive_id.startswith("."):
            raise KeyError(archive_id)
        return self.root / f"{archive_id}.json"

    def get(self, archive_id: str) -> dict[str, Any] | None:
        try:
            path = self._path(archive_id)
        except KeyError:
            return None
        return json.loads(path.read_text()) if path.exists() else None

    def _save(self, record: dict[str, Any]) -> None:
        path = self._path(record["id"])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)

    def ids(self) -> list[str]:
        return sorted(p.name.removesuffix(".json") for p in self.root.glob("*.json"))

    def _store(self, item: Any) -> tuple[int, dict[str, Any]]:
        try:
            archive_id = item["id"]
            content = base64.b64decode(item["content"], validate=True)
            declared = item["sha256"]
            policy = item["policy"]
            manifest = item["manifest"]
            session_id = item["session_id"]
        except (KeyError, TypeError, ValueError) as exc:
            return 400, {"error": f"malformed archive: {exc}"}
        if policy.get("compliance") not in POLICIES:
            return 400, {"error": f"unknown policy {policy.get('compliance')!r}"}
        digest = hashlib.sha256(content).hexdigest()
        if digest != declared:
            return 400, {"error": "content does not match its sha256"}
        existing = self.get(archive_id)
        if existing is not None:
            if existing["sha256"] == digest:
                return 200, self._meta(existing)
            return 409, {"error": "another archive has this id"}
        record = {
            "id": archive_id,
            "session_id": session_id,
            "manifest": manifest,
            "sha256": digest,
            "size": len(content),
            "stored_at": manifest.get("created_at"),
            "policy": policy,
            "content": item["content"],
        }
        self._save(record)
        return 201, self._meta(record)

    @staticmethod
    def _meta(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if k != "content"}

    def route(
        self, method: str, path: str, query: dict[str, list[str]], handler: Any
    ) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if parts[:2] != ["api", "v1"]:
            return 404, {"error": "no such path"}
        rest = parts[2:]
        if rest == ["policies"] and method == "GET":
            return 200, {
                "policies": [{"name": k, "retention_days": v} for k, v in POLICIES.items()]
            }
        if rest == ["archive"] and method == "POST":
            return self._store(handler._body())
        if rest == ["archive", "batch"] and method == "POST":
            results = []
            for item in handler._body().get("archives", []):
                status, body = self._store(item)
                results.append({"id": item.get("id"), "status": status, **body})
            return 200, {"results": results}
        if rest == ["archive"] and method == "GET":
            return self._list(query)
        if len(rest) >= 2 and rest[0] == "archive":
            return self._one(method, rest[1], rest[2:], query, handler)
        return 405, {"error": "method not allowed"}

    def _list(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        session = query.get("session_id", [""])[0]
        limit = int(query.get("limit", ["100"])[0])
        after = query.get("page_token", [""])[0]
        records = [self.get(i) for i in self.ids() if i > after]
        found = [r for r in records if r and (not session or r["session_id"] == session)]
        page = found[:limit]
        token = page[-1]["id"] if len(found) > limit else ""
        return 200, {"archives": [self._meta(r) for r in page], "next_page_token": token}

    def _one(
        self,
        method: str,
        archive_id: str,
        rest: list[str],
        query: dict[str, list[str]],
        handler: Any,
    ) -> tuple[int, Any]:
        record = self.get(archive_id)
        if record is None:
            return 404, {"error": "no such archive"}
        if not rest and method == "GET":
            body = self._meta(record)
            if query.get("include") == ["content"]:
                body["content"] = record["content"]
            return 200, body
        if not rest and method == "DELETE":
            if record["policy"].get("legal_hold"):
                return 409, {"error": "archive is under legal hold"}
            self._path(record["id"]).unlink()
            return 204, None
        if rest == ["policy"] and method == "PUT":
            record["policy"].update(handler._body())
            self._save(record)
            return 200, self._meta(record)
        return 405, {"error": "method not allowed"}
