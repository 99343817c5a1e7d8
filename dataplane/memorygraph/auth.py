"""API-key / bearer-token authentication of RPCs.

Keys come from a file (one per line; blank lines and `#` comments ignored), re-read when the
file changes so keys rotate without a restart, and/or from the ``MEMORYGRAPH_API_KEYS``
environment variable (comma-separated). A caller presents one as ``authorization: Bearer KEY``
or ``x-api-key: KEY``. Every configured key is compared in constant time, so timing reveals
neither which key nor how much of one matched.

Revocation fails closed: a keys file that becomes empty, unreadable or missing takes its keys
with it (only the environment's keys stay valid), which is logged and counted in
``memorygraph_auth_key_reloads_total{result}``; ``memorygraph_auth_keys`` is the number of keys
in force.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from memorygraph.errors import ConfigError
from memorygraph.metrics import definitions as metrics

__all__ = ["KeyRing", "presented_key"]

log = logging.getLogger("memorygraph.auth")

ENV_KEYS = "MEMORYGRAPH_API_KEYS"


def _digest(key: str) -> bytes:
    # Comparing fixed-size digests keeps the comparison time independent of the key lengths.
    return hashlib.sha256(key.encode()).digest()


def _parse(text: str) -> list[str]:
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


class OwnKey:
    """The key this server's own processes present to each other: the environment's first
    (unless `environment` is off), else the keys file's first, read again whenever the file
    changes (keys rotate)."""

    def __init__(self, keys_file: Path | None, *, environment: bool = True) -> None:
        self.keys_file = keys_file
        self.environment = environment
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._key: str | None = None

    def current(self) -> str | None:
        env = [k.strip() for k in os.environ.get(ENV_KEYS, "").split(",") if k.strip()]
        if env and self.environment:
            return env[0]
        if self.keys_file is None:
            return None
        with self._lock:
            try:
                stat = self.keys_file.stat()
                stamp = (stat.st_mtime_ns, stat.st_size)
                if stamp != self._stamp:
                    keys = _parse(self.keys_file.read_text())
                    self._stamp, self._key = stamp, (keys[0] if keys else None)
            except (OSError, ValueError):
                return self._key
            return self._key

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Call metadata presenting the key (none when there is none)."""
        key = self.current()
        return (("authorization", f"Bearer {key}"),) if key else ()


class KeyRing:
    def __init__(
        self, keys_file: Path | None, env_keys: str | None = None, *, what: str = "API keys"
    ) -> None:
        """`what` the keys are, in messages; only the API keys are counted in metrics."""
        self.keys_file = keys_file
        self.what = what
        self._env = [k.strip() for k in (env_keys or "").split(",") if k.strip()]
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._digests: list[bytes] = []
        self._load(initial=True)

    @classmethod
    def from_environment(cls, keys_file: Path | None) -> KeyRing:
        return cls(keys_file, os.environ.get(ENV_KEYS))

    def _load(self, *, initial: bool = False) -> None:
        keys = list(self._env)
        result = "ok"
        if self.keys_file is not None:
            try:
                stat = self.keys_file.stat()
                stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
                if stamp == self._stamp:
                    return
                from_file = _parse(self.keys_file.read_text())
            except (OSError, ValueError) as exc:  # ValueError: not UTF-8 text
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                if initial:
                    raise ConfigError(
                        f"cannot read {self.what} file {self.keys_file}: {reason}"
                    ) from exc
                stamp, from_file, result = None, [], "unreadable"
                log.error(
                    "cannot read %s file %s (%s): its keys are no longer accepted",
                    self.what,
                    self.keys_file,
                    reason,
                )
            else:
                if not from_file and not initial:
                    result = "empty"
                    log.error(
                        "%s file %s holds no keys: its keys are no longer accepted",
                        self.what,
                        self.keys_file,
                    )
            self._stamp = stamp
            keys += from_file
        if not keys and initial:
            if self.what != "API keys":
                raise ConfigError(f"the {self.what} file {self.keys_file} holds no key")
            raise ConfigError(
                "authentication is enabled but no API keys are configured "
                f"(auth.api_keys_file or {ENV_KEYS})"
            )
        with self._lock:
            self._digests = [_digest(k) for k in keys]
        if self.what == "API keys":
            metrics.AUTH_KEYS.set(len(keys))
            if not initial:
                metrics.AUTH_KEY_RELOADS.labels(result).inc()
        if not initial and result == "ok":
            log.info("reloaded %d %s", len(keys), self.what)

    def refresh(self) -> None:
        """Re-read the keys file if it changed."""
        self._load()

    def accepts(self, key: str | None) -> bool:
        if not key:
            return False
        presented = _digest(key)
        with self._lock:
            digests = self._digests
        matched = False
        for digest in digests:  # no early exit
            matched |= hmac.compare_digest(presented, digest)
        return matched


def presented_key(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The key a caller sent in its metadata, if any."""
    for name, value in metadata or ():
        if not isinstance(value, str):
            continue
        if name == "authorization":
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == "x-api-key" and value.strip():
            return value.strip()
    return None
