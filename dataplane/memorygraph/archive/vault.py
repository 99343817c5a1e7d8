"""The Data-Vault destination: the vault's REST API over HTTP(S) with a bearer token.

    GET    /health                          {"status": "ok"}
    GET    /api/v1/policies                 {"policies": [{"name", "retention_days"}]}
    POST   /api/v1/archive/batch            store archives: {"archives": [...]} -> {"results"},
                                            per archive 201 new, 200 same bytes there, 409 other
    GET    /api/v1/archive                  list: ?session_id=&limit=&page_token=
    GET    /api/v1/archive/{id}             metadata, the vault's own SHA-256 of what it holds;
                                            ?include=content adds the bytes (base64)
    PUT    /api/v1/archive/{id}/policy      {"legal_hold": bool} and/or retention
    DELETE /api/v1/archive/{id}             204; 409 while under legal hold

docs/archival.md has the request and response bodies. Answers are read to a bound and never
whole (`memorygraph.answers`): `MAX_ANSWER_BYTES` for the API's small answers, and for an
archive's content what a `MAX_ARCHIVE_BYTES` archive takes in base64.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from memorygraph.answers import IDENTITY, AnswerRefused, read_httpx
from memorygraph.archive import bundle as archive_limits
from memorygraph.archive.bundle import ArchiveError, Bundle, RetentionPolicy

__all__ = ["MAX_ANSWER_BYTES", "VaultDestination"]

TOKEN_ENV = "MEMORYGRAPH_VAULT_TOKEN"
# The largest answer read from the vault, but for an archive's content.
MAX_ANSWER_BYTES = 16 << 20
# Of an error message from the vault, this much is quoted.
_REASON_CHARS = 300


def _content_answer_bytes() -> int:
    """The largest answer carrying an archive: its base64 text and the metadata around it."""
    return (archive_limits.MAX_ARCHIVE_BYTES + 2) // 3 * 4 + MAX_ANSWER_BYTES


@dataclass(frozen=True, slots=True)
class _Answer:
    """A vault answer, read whole once it proved within its bound."""

    status_code: int
    reason_phrase: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Retryable(Exception):
    """A failure worth another try (connection trouble, 5xx, 429)."""


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, _Retryable)


class VaultDestination:
    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        attempts: int = 4,
        backoff: float = 0.5,
        verify: bool | str = True,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ArchiveError(f"vault URL {url!r} must start with http:// or https://")
        token = token if token is not None else os.environ.get(TOKEN_ENV, "")
        headers = dict([IDENTITY])
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = url.rstrip("/")
        self.name = f"vault {self.url}"
        self.client = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, verify=verify
        )
        self.attempts = attempts
        self.backoff = backoff

    def close(self) -> None:
        self.client.close()

    def _send(self, method: str, path: str, limit: int, **kwargs: Any) -> _Answer:
        """One call; its answer read to `limit` bytes."""
        request = self.client.build_request(method, path, **kwargs)
        try:
            response = self.client.send(request, stream=True)
            try:
                body = read_httpx(response, limit)
            finally:
                response.close()
        except httpx.HTTPError as exc:
            raise _Retryable(f"{method} {path}: {exc}") from None
        except AnswerRefused as exc:
            raise ArchiveError(f"{method} {path}: the vault's answer was refused: {exc}") from None
        answer = _Answer(response.status_code, response.reason_phrase, body)
        if answer.status_code >= 500 or answer.status_code == 429:
            raise _Retryable(f"{method} {path}: HTTP {answer.status_code} {_reason(answer)}")
        return answer

    def _request(
        self, method: str, path: str, *, limit: int | None = None, **kwargs: Any
    ) -> _Answer:
        """One call, retried with backoff while the failure is transient; 4xx come back. The
        answer is read to `limit` bytes (default `MAX_ANSWER_BYTES`)."""
        limit = MAX_ANSWER_BYTES if limit is None else limit
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff, max=self.backoff * 16),
            retry=retry_if_exception(_transient),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._send(method, path, limit, **kwargs)
        except _Retryable as exc:
            raise ArchiveError(f"the vault did not answer: {exc}") from None
        raise AssertionError("unreachable")  # Retrying either returns or reraises

    def _json(self, response: _Answer, what: str) -> Any:
        if response.status_code == 401 or response.status_code == 403:
            raise ArchiveError(
                f"the vault refused the credentials ({what}: HTTP {response.status_code}); "
                f"check {TOKEN_ENV}"
            )
        if response.status_code >= 400:
            raise ArchiveError(f"{what}: HTTP {response.status_code} {_reason(response)}")
        try:
            return response.json()
        except (ValueError, RecursionError):
            raise ArchiveError(f"{what}: the vault answered with something not JSON") from None

    # -- the destination protocol -----------------------------------------------------------

    def check(self, policy: RetentionPolicy) -> None:
        health = self._request("GET", "/health")
        if health.status_code != 200:
            raise ArchiveError(f"the vault is not healthy: HTTP {health.status_code}")
        body = self._json(self._request("GET", "/api/v1/policies"), "listing policies")
        names = {p.get("name") for p in body.get("policies", [])}
        if policy.compliance not in names:
            raise ArchiveError(
                f"the vault has no retention policy {policy.compliance!r} "
                f"(it has {', '.join(sorted(map(str, names))) or 'none'})"
            )

    @staticmethod
    def _payload(bundle: Bundle) -> dict[str, Any]:
        m = bundle.manifest
        return {
            "id": bundle.archive_id,
            "session_id": bundle.session_id,
            "manifest": m,
            "sha256": bundle.sha256,
            "content": base64.b64encode(bundle.data).decode(),
            "policy": {
                "compliance": m["compliance"],
                "retention_days": m["retention_days"],
                "retain_until": m["retain_until"],
                "legal_hold": m["legal_hold"],
            },
        }

    def put_many(self, bundles: list[Bundle]) -> dict[str, bool | ArchiveError]:
        """Store several archives in one request; per archive: new (True), there (False) or
        the error."""
        response = self._request(
            "POST", "/api/v1/archive/batch", json={"archives": [self._payload(b) for b in bundles]}
        )
        body = self._json(response, f"storing {len(bundles)} archives")
        results: dict[str, bool | ArchiveError] = {}
        for item in body.get("results", []):
            status = item.get("status")
            if status in (200, 201):
                results[item["id"]] = status == 201
            else:
                results[item["id"]] = ArchiveError(
                    f"archive {item.get('id')}: the vault refused it: HTTP {status} "
                    f"{item.get('error', '')}".rstrip()
                )
        for bundle in bundles:
            results.setdefault(
                bundle.archive_id,
                ArchiveError(f"archive {bundle.archive_id}: missing from the vault's answer"),
            )
        return results

    def _metadata(self, archive_id: str, *, content: bool = False) -> dict[str, Any] | None:
        params = {"include": "content"} if content else None
        limit = _content_answer_bytes() if content else None
        response = self._request(
            "GET", f"/api/v1/archive/{_quoted(archive_id)}", limit=limit, params=params
        )
        if response.status_code == 404:
            return None
        body: dict[str, Any] = self._json(response, f"reading archive {archive_id}")
        return body

    def verify(self, bundle: Bundle) -> None:
        """The vault confirms it holds exactly our bytes (its own checksum and size)."""
        meta = self._metadata(bundle.archive_id)
        if meta is None:
            raise ArchiveError(f"archive {bundle.archive_id}: not in the vault after upload")
        if meta.get("sha256") != bundle.sha256 or meta.get("size") != len(bundle.data):
            raise ArchiveError(
                f"archive {bundle.archive_id}: the vault reports checksum "
                f"{meta.get('sha256')} / {meta.get('size')} bytes, expected {bundle.sha256} / "
                f"{len(bundle.data)}"
            )

    def fetch(self, archive_id: str) -> tuple[dict[str, Any], bytes]:
        meta = self._metadata(archive_id, content=True)
        if meta is None:
            raise ArchiveError(f"archive {archive_id} is not in the vault")
        try:
            data = base64.b64decode(meta["content"], validate=True)
            manifest = dict(meta["manifest"])
        except (KeyError, TypeError, ValueError):
            raise ArchiveError(
                f"archive {archive_id}: the vault sent no readable content"
            ) from None
        return manifest, data

    def list(self, session_id: str = "") -> Iterator[dict[str, Any]]:
        token = ""
        while True:
            params = {"limit": "100", "page_token": token}
            if session_id:
                params["session_id"] = session_id
            body = self._json(
                self._request("GET", "/api/v1/archive", params=params), "listing archives"
            )
            for item in body.get("archives", []):
                yield {**item["manifest"], "legal_hold": item.get("policy", {}).get("legal_hold")}
            token = body.get("next_page_token", "")
            if not token:
                return

    def delete(self, archive_id: str, *, bypass_governance_retention: bool = False) -> None:
        """Erase an archive; the vault has no governance mode to bypass."""
        response = self._request("DELETE", f"/api/v1/archive/{_quoted(archive_id)}")
        if response.status_code == 404:
            raise ArchiveError(f"archive {archive_id} is not in the vault")
        if response.status_code == 409:
            raise ArchiveError(
                f"archive {archive_id} is under legal hold; lift the hold before deleting it"
            )
        if response.status_code != 204:
            self._json(response, f"deleting archive {archive_id}")

    def set_legal_hold(self, archive_id: str, on: bool) -> None:
        response = self._request(
            "PUT", f"/api/v1/archive/{_quoted(archive_id)}/policy", json={"legal_hold": on}
        )
        if response.status_code == 404:
            raise ArchiveError(f"archive {archive_id} is not in the vault")
        self._json(response, f"setting the legal hold of archive {archive_id}")


def _quoted(archive_id: str) -> str:
    """An archive id as one path segment, whatever a user typed ("../policies" included)."""
    return quote(archive_id, safe="")


def _reason(response: _Answer) -> str:
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return " ".join(body["error"][:_REASON_CHARS].split())
    return response.reason_phrase
