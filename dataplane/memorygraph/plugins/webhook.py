"""Webhook plugins: an external service answers each hook call over HTTP+JSON.

Request (POST to the configured URL, ``Content-Type: application/json``)::

    {"apiVersion": "memorygraph.io/plugins/v1",
     "plugin": "policy",
     "call": {"hook": "before_create_node", "subject": "prompt", "session_id": "…",
              "node_id": "…", "content": "…", "metadata": {…}, "details": {…},
              "texts": {"model": "…", "role": "…"}}}

Response (HTTP 200)::

    {"allow": true}                                   # go ahead
    {"allow": false, "reason": "contains secrets"}    # refuse the call (before-hooks)
    {"allow": true, "patch": {"content": "…", "metadata": {…}, "texts": {"role": "…"}}}
                                                      # store this instead

After-hook responses are read for errors only. Anything else — another status, a body that is
not this shape, a timeout, a refused connection — is a plugin failure, handled by the plugin's
failure policy. Connections are pooled and reused; the bearer token file is re-read when it
changes (Secret rotation).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx

from memorygraph.plugins.calls import HookCall, PluginRejected
from memorygraph.plugins.schema import WebhookConfig

__all__ = ["API_VERSION", "PluginFailure", "WebhookPlugin"]

API_VERSION = "memorygraph.io/plugins/v1"


def _is_text(value: Any) -> bool:
    """A string that can be stored: JSON escapes can spell strings that are no Unicode text
    (lone surrogates), which no record could hold."""
    if not isinstance(value, str):
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


class PluginFailure(Exception):
    """The plugin could not give an answer (its failure policy decides what happens)."""


class WebhookPlugin:
    blocking_after = False  # after-hooks are delivered in the background

    def __init__(self, name: str, config: WebhookConfig, timeout: float) -> None:
        self.name = name
        self.config = config
        verify: ssl.SSLContext | bool = True
        if config.ca_bundle:
            verify = ssl.create_default_context(cadata=config.ca_bundle)
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            verify=verify,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        self._token_stamp: int | None = None
        self._token = ""

    def _authorization(self) -> dict[str, str]:
        path: Path | None = self.config.token_file
        if path is None:
            return {}
        try:
            stamp = path.stat().st_mtime_ns
            if stamp != self._token_stamp:
                self._token, self._token_stamp = path.read_text().strip(), stamp
        except OSError as exc:
            raise PluginFailure(f"cannot read token file {path}: {exc.strerror}") from exc
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def handle(self, call: HookCall) -> None:
        answer = self._ask(call)
        if not call.hook.is_before:
            return
        if not answer["allow"]:
            raise PluginRejected(self.name, str(answer.get("reason") or "denied"))
        self._apply_patch(call, answer.get("patch") or {})

    def _ask(self, call: HookCall) -> dict[str, Any]:
        """The service's answer to `call`: an object with a boolean "allow"."""
        body = {"apiVersion": API_VERSION, "plugin": self.name, "call": call.to_json()}
        try:
            reply = self._client.post(self.config.url, json=body, headers=self._authorization())
        except httpx.TimeoutException as exc:
            raise TimeoutError(f"no answer within the timeout ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise PluginFailure(f"cannot reach {self.config.url}: {type(exc).__name__}") from exc
        if reply.status_code != 200:
            raise PluginFailure(f"answered HTTP {reply.status_code}")
        try:
            answer: Any = reply.json()
        except ValueError as exc:
            raise PluginFailure("answered with a body that is not JSON") from exc
        if not isinstance(answer, dict) or not isinstance(answer.get("allow"), bool):
            raise PluginFailure('answered without a boolean "allow"')
        return answer

    @staticmethod
    def _apply_patch(call: HookCall, patch: Any) -> None:
        """What the service asked to change in the call's content, metadata and texts."""
        if not isinstance(patch, dict):
            raise PluginFailure('"patch" must be an object')
        if "content" in patch:
            if not _is_text(patch["content"]):
                raise PluginFailure('"patch.content" must be a string')
            call.content = patch["content"]
        if "metadata" in patch:
            metadata = patch["metadata"]
            if not isinstance(metadata, dict) or not all(
                _is_text(k) and _is_text(v) for k, v in metadata.items()
            ):
                raise PluginFailure('"patch.metadata" must map strings to strings')
            call.metadata = dict(metadata)
        if "texts" in patch:
            texts = patch["texts"]
            if not isinstance(texts, dict) or not all(
                k in call.texts and _is_text(v) for k, v in texts.items()
            ):
                raise PluginFailure('"patch.texts" must map names in the call\'s texts to strings')
            call.texts.update(texts)

    def close(self) -> None:
        self._client.close()
