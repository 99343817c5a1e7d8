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
not this shape, no complete answer within the plugin's timeout, a refused connection — is a
plugin failure, handled by the plugin's failure policy.

What the server allows a webhook (`outbound.WebhookPolicy`): its bearer token comes only from
its own Secret (`tokens`), re-read when it changes; it connects only to addresses the policy
allows, checked on every new connection; `timeout_seconds` bounds the whole exchange
(connect, send, headers, body); the answer is read to `plugins_max_answer_bytes` and refused
beyond, and must not be compressed; a refusal's reason is cut to one clean line. Connections
are pooled and reused, and never go through an HTTP proxy (the policy checks the address
connected to).
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import httpcore
import httpx

from memorygraph.answers import IDENTITY, AnswerRefused, check_headers, read_bounded
from memorygraph.errors import ConfigError
from memorygraph.plugins.calls import HookCall, PluginRejected
from memorygraph.plugins.outbound import (
    DEFAULT_POLICY,
    AddressRefused,
    GuardedBackend,
    WebhookPolicy,
    deadline,
)
from memorygraph.plugins.schema import WebhookConfig
from memorygraph.plugins.tokens import TokenFile

__all__ = ["API_VERSION", "PluginFailure", "WebhookPlugin"]

API_VERSION = "memorygraph.io/plugins/v1"

# Everything httpcore raises for a connection or an exchange that went wrong, timeouts apart.
_TRANSPORT_ERRORS = (
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ConnectionNotAvailable,
    httpcore.ProxyError,
)


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


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class WebhookPlugin:
    blocking_after = False  # after-hooks are delivered in the background

    def __init__(
        self,
        name: str,
        config: WebhookConfig,
        timeout: float,
        policy: WebhookPolicy = DEFAULT_POLICY,
    ) -> None:
        self.name = name
        self.config = config
        self.timeout = timeout
        self.max_answer_bytes = policy.max_answer_bytes
        url = httpx.URL(config.url)
        self._url = httpcore.URL(
            scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
        )
        self._host = url.netloc
        self._token: TokenFile | None = None
        if config.token_file is not None:
            try:
                self._token = TokenFile(policy.secrets_dir, name, config.token_file)
            except ValueError as exc:
                raise ConfigError(f"plugin {name!r}: {exc}") from None
        context = (
            ssl.create_default_context(cadata=config.ca_bundle)
            if config.ca_bundle
            else httpx.create_ssl_context()
        )
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=32,
            max_keepalive_connections=16,
            network_backend=GuardedBackend(policy.addresses),
        )

    def _headers(self) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"Host", self._host),
            (b"Content-Type", b"application/json"),
            (b"Accept", b"application/json"),
            (IDENTITY[0].encode(), IDENTITY[1].encode()),
        ]
        if self._token is not None:
            try:
                token = self._token.read()
            except ValueError as exc:
                raise PluginFailure(str(exc)) from None
            except OSError as exc:
                raise PluginFailure(
                    f"cannot read token file {self._token.path}: {exc.strerror}"
                ) from None
            if token:
                headers.append((b"Authorization", b"Bearer " + token.encode()))
        return headers

    def handle(self, call: HookCall) -> None:
        answer = self._ask(call)
        if not call.hook.is_before:
            return
        if not answer["allow"]:
            reason = answer.get("reason")
            reason = reason if isinstance(reason, str) and reason else "denied"
            raise PluginRejected(self.name, reason)
        self._apply_patch(call, answer.get("patch") or {})

    def _exchange(self, body: bytes) -> tuple[int, bytes]:
        """POST `body`; the status and, for a 200, the answer's bytes."""
        limit, timeout = self.max_answer_bytes, self.timeout
        extensions = {"timeout": dict.fromkeys(("connect", "read", "write", "pool"), timeout)}
        with (
            deadline(timeout),
            self._pool.stream(
                "POST", self._url, headers=self._headers(), content=body, extensions=extensions
            ) as reply,
        ):
            if reply.status != 200:
                return reply.status, b""
            headers = reply.headers
            length = _header(headers, b"content-length")
            check_headers(length, _header(headers, b"content-encoding"), limit)
            return reply.status, read_bounded(reply.iter_stream(), limit)

    def _ask(self, call: HookCall) -> dict[str, Any]:
        """The service's answer to `call`: an object with a boolean "allow"."""
        body = {"apiVersion": API_VERSION, "plugin": self.name, "call": call.to_json()}
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            status, answer_bytes = self._exchange(raw)
        except AddressRefused as exc:
            raise PluginFailure(f"refused to connect: {exc}") from None
        except httpcore.TimeoutException as exc:
            raise TimeoutError(
                f"no complete answer within {self.timeout:g} s ({type(exc).__name__})"
            ) from None
        except _TRANSPORT_ERRORS as exc:
            raise PluginFailure(f"cannot reach {self.config.url}: {type(exc).__name__}") from None
        except AnswerRefused as exc:
            raise PluginFailure(str(exc)) from None
        if status != 200:
            raise PluginFailure(f"answered HTTP {status}")
        try:
            answer: Any = json.loads(answer_bytes)
        except (ValueError, RecursionError):
            raise PluginFailure("answered with a body that is not JSON") from None
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
        self._pool.close()
