"""Client of the LLM-Registry REST API (httpx, asyncio).

    POST /api/v1/sessions               register a session (model, tags, metadata)
    POST /api/v1/sessions/{id}/status   a session's status: active, closed, deleted, archived
    POST /api/v1/usage                  token usage of one response
    GET  /api/v1/models/{id}            model metadata (cached for `model_ttl` seconds)
    GET  /health

Every write carries an `Idempotency-Key` header, so a report delivered twice (after a retry)
counts once. Authentication is a bearer token read from a file, re-read when it changes.
Answers are read to `MAX_ANSWER_BYTES` and never whole (`memorygraph.answers`): a larger or
compressed answer to a report leaves the report's status to decide, and to a model lookup it
is a permanent error.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from memorygraph.answers import IDENTITY, AnswerRefused, aread_httpx

__all__ = ["MAX_ANSWER_BYTES", "RegistryClient", "RegistryError"]

# The largest registry answer read (model metadata; reports' answers are not used).
MAX_ANSWER_BYTES = 1 << 20


class RegistryError(Exception):
    """The registry did not accept a request (retryable unless `permanent`)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class RegistryClient:
    def __init__(
        self,
        base_url: str,
        *,
        token_file: Path | None = None,
        timeout: float = 5.0,
        model_ttl: float = 300.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_file = token_file
        self.model_ttl = model_ttl
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, headers=dict([IDENTITY])
        )
        self._token = ""
        self._token_stamp: int | None = None
        self._models: dict[str, tuple[float, dict[str, Any]]] = {}

    def _headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.token_file is not None:
            stamp = self.token_file.stat().st_mtime_ns
            if stamp != self._token_stamp:
                self._token, self._token_stamp = self.token_file.read_text().strip(), stamp
            headers["Authorization"] = f"Bearer {self._token}"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None, key: str | None
    ) -> bytes | AnswerRefused:
        """The answer's bytes, or why they were not read (a 2xx or 409 status stands)."""
        request = self._http.build_request(method, path, json=body, headers=self._headers(key))
        try:
            reply = await self._http.send(request, stream=True)
            try:
                status = reply.status_code
                content: bytes | AnswerRefused
                try:
                    content = await aread_httpx(reply, MAX_ANSWER_BYTES)
                except AnswerRefused as exc:
                    content = exc
            finally:
                await reply.aclose()
        except httpx.HTTPError as exc:
            raise RegistryError(f"{method} {path}: {type(exc).__name__}") from exc
        if status >= 500 or status == 429:
            raise RegistryError(f"{method} {path}: HTTP {status}")
        if status >= 400 and status != 409:  # 409: already recorded
            raise RegistryError(f"{method} {path}: HTTP {status}", permanent=True)
        return content

    async def register_session(self, body: dict[str, Any], *, key: str) -> None:
        await self._send("POST", "/api/v1/sessions", body, key)

    async def update_status(self, session_id: str, status: str, *, key: str) -> None:
        await self._send("POST", f"/api/v1/sessions/{session_id}/status", {"status": status}, key)

    async def report_usage(self, body: dict[str, Any], *, key: str) -> None:
        await self._send("POST", "/api/v1/usage", body, key)

    async def model(self, model_id: str) -> dict[str, Any]:
        """Model metadata, cached for `model_ttl` seconds."""
        cached = self._models.get(model_id)
        if cached is not None and time.monotonic() - cached[0] < self.model_ttl:
            return cached[1]
        path = f"/api/v1/models/{model_id}"
        reply = await self._send("GET", path, None, None)
        if isinstance(reply, AnswerRefused):
            raise RegistryError(f"GET {path}: {reply}", permanent=True)
        try:
            data = json.loads(reply)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            raise RegistryError(f"GET {path}: the answer is not a JSON object", permanent=True)
        self._models[model_id] = (time.monotonic(), data)
        return data

    async def healthy(self) -> bool:
        try:
            async with self._http.stream("GET", "/health") as reply:
                return reply.status_code == 200
        except httpx.HTTPError:
            return False

    async def close(self) -> None:
        await self._http.aclose()
