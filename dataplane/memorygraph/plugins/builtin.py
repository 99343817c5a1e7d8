"""Built-in plugins, configured by data: validator, PII redactor, enricher, per-session quota.

Each is a small object with `name` and `handle(call)`; a before-hook changes `call.content`,
`call.metadata` and `call.texts` in place or raises `PluginRejected`. The validator and the
redactor look at every text a user wrote: content, metadata values and the texts of the call
(a tool's arguments and result, a session's user, a prompt's role, ...).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from memorygraph.errors import Code
from memorygraph.plugins.calls import HookCall, PluginRejected
from memorygraph.plugins.schema import (
    EnricherConfig,
    QuotaConfig,
    RedactorConfig,
    ValidatorConfig,
    compile_re2,
)

__all__ = ["Enricher", "Plugin", "Quota", "Redactor", "Validator", "luhn_valid"]


class Plugin(Protocol):
    name: str

    def handle(self, call: HookCall) -> None: ...


class Validator:
    def __init__(self, name: str, config: ValidatorConfig) -> None:
        self.name = name
        self.config = config
        self._allow = [compile_re2(p) for p in config.allow_patterns]
        self._deny = [(p, compile_re2(p)) for p in config.deny_patterns]
        self._deny_any = _searching_all(config.deny_patterns)

    def _reject(self, reason: str) -> None:
        raise PluginRejected(self.name, reason, Code.INVALID_ARGUMENT)

    def handle(self, call: HookCall) -> None:
        config = self.config
        content = call.content
        if content is not None:
            if config.max_content_length is not None and len(content) > config.max_content_length:
                self._reject(
                    f"content has {len(content)} characters; at most "
                    f"{config.max_content_length} are allowed"
                )
            if self._allow and not any(r.fullmatch(content) for r in self._allow):
                self._reject("content matches none of the allowed patterns")
        if self._deny:
            self._check_denied(call)
        missing = [k for k in config.required_metadata if k not in call.metadata]
        if missing:
            self._reject(f"metadata must include {', '.join(missing)}")
        model = call.texts.get("model", call.details.get("model"))
        if config.allowed_models and model and model not in config.allowed_models:
            self._reject(
                f"model {model!r} is not allowed (allowed: {', '.join(config.allowed_models)})"
            )

    def _check_denied(self, call: HookCall) -> None:
        """No text of the call (content, texts, metadata values) matches a deny pattern."""
        if self._deny_any is not None:
            # Most calls match nothing: one search of all texts at once tells. A match (maybe
            # one spanning two texts) sends the call through the search of each text below.
            every = (call.content, *call.texts.values(), *call.metadata.values())
            joined = "\n".join([text for text in every if text])
            if not joined or self._deny_any.search(joined) is None:
                return
        texts = [("content", call.content or "")]
        texts += [(name, value) for name, value in call.texts.items()]
        texts += [(f"metadata[{key[:64]!r}]", value) for key, value in call.metadata.items()]
        for name, text in texts:
            if not text:
                continue
            for pattern, regex in self._deny:
                if regex.search(text):
                    self._reject(f"{name} matches the denied pattern {pattern!r}")


# RE2 syntax whose meaning depends on what lies around a match: the assertions (RE2 has no
# others), and \Q, whose literal text runs to \E or to the end of the pattern and would take in
# the ")" of a group around it. Looked for as text, so a negated class ([^a]) or an escaped \$
# counts too: such patterns are searched for one at a time, slower and never wrong.
_CONTEXT_SYNTAX = ("^", "$", "\\A", "\\z", "\\b", "\\B", "\\Q")


def _searching_all(patterns: list[str]) -> Any | None:
    """One RE2 regex that, searched for in texts joined together, matches whenever one of
    `patterns` matches one of the texts (and, rarely, across two); None when that cannot be
    promised, and the texts are then searched one pattern at a time.

    Each search is a call into RE2 that lets go of the interpreter lock, and a thread that
    does so under load waits to take it back behind the others: with 32 threads writing, each
    search cost about 20 to 25 µs of CPU more than the same search in Python's `re`, which keeps
    the lock. A pattern without assertions matches a substring wherever it occurs, so whatever
    it finds in a text it finds in the texts joined; the alternation of all patterns finds a
    match where any of them does. (An RE2 set would tell the same in one call, but reports no
    match when its automaton runs out of memory, where a single regex goes on with a slower
    engine.)"""
    if not patterns or any(syntax in p for p in patterns for syntax in _CONTEXT_SYNTAX):
        return None
    try:
        return compile_re2("|".join(f"(?:{p})" for p in patterns))
    except ValueError:  # together, too large for RE2's memory budget
        return None


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number carries."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


_PII_PATTERNS = {
    # Order matters: cards and keys before phone numbers, whose pattern would eat them.
    "card": r"\b(?:\d[ -]?){12,18}\d\b",
    "api_key": (
        r"\b(?:sk-[A-Za-z0-9_-]{20,}|sk_(?:live|test)_[A-Za-z0-9]{16,}|AKIA[0-9A-Z]{16}"
        r"|gh[pousr]_[A-Za-z0-9]{36}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})\b"
    ),
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    # International numbers with a leading +, and the 3-3-4 national shape; not dates or times.
    "phone": (
        r"\+\d{1,3}[\s.-]?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}"
        r"|\(\d{3}\)\s?\d{3}[\s.-]\d{4}|\b\d{3}[\s.-]\d{3}[\s.-]\d{4}\b"
    ),
}


_SEVEN_DIGITS = re.compile(r"\d(?:[\s().-]?\d){6}")
_KEY_PREFIXES = ("sk-", "sk_", "AKIA", "gh", "xox", "AIza")


def _passes_one(tests: tuple[Callable[[str], bool], ...], text: str) -> bool:
    # A loop: about half the time of any() over a generator, on every text a user writes.
    for test in tests:  # noqa: SIM110
        if test(text):
            return True
    return False


def _key_prefix_in(text: str) -> bool:
    for prefix in _KEY_PREFIXES:  # noqa: SIM110 (as above)
        if prefix in text:
            return True
    return False


def _seven_digits(text: str) -> bool:
    return _SEVEN_DIGITS.search(text) is not None


def _plus(text: str) -> bool:
    return "+" in text


def _at(text: str) -> bool:
    return "@" in text


# Cheap necessary conditions for each kind of PII: a text its pattern matches passes one of its
# tests. A phone number in international form starts with "+" and may hold as few as six
# digits, with two characters between some of them; the other forms hold seven digits with at
# most one character between each.
_MAY_CONTAIN: dict[str, tuple[Callable[[str], bool], ...]] = {
    "card": (_seven_digits,),
    "phone": (_plus, _seven_digits),
    "email": (_at,),
    "api_key": (_key_prefix_in,),
}
# Every kind's tests, each once: most text holds no PII and fails them all.
_ANY_KIND = tuple(dict.fromkeys(test for tests in _MAY_CONTAIN.values() for test in tests))


class Redactor:
    def __init__(self, name: str, config: RedactorConfig) -> None:
        self.name = name
        self.config = config
        self._patterns = [
            (kind, compile_re2(pattern))
            for kind, pattern in _PII_PATTERNS.items()
            if kind in config.patterns
        ]

    def _replacement(self, kind: str, value: str) -> str:
        if self.config.mode == "hash":
            return f"[{kind}:{hashlib.sha256(value.encode()).hexdigest()[:12]}]"
        return self.config.replacement

    def redact(self, text: str) -> str:
        if not _passes_one(_ANY_KIND, text):
            return text
        for kind, regex in self._patterns:
            if not _passes_one(_MAY_CONTAIN[kind], text):
                continue  # skip the RE2 pass when it cannot match
            if kind == "card":

                def card(match: Any) -> str:
                    digits = "".join(c for c in match.group(0) if c.isdigit())
                    if 13 <= len(digits) <= 19 and luhn_valid(digits):
                        return self._replacement("card", match.group(0))
                    return str(match.group(0))

                text = regex.sub(card, text)
            else:
                text = regex.sub(lambda m, k=kind: self._replacement(k, m.group(0)), text)
        return text

    def handle(self, call: HookCall) -> None:
        if call.content:
            call.content = self.redact(call.content)
        if self.config.redact_metadata:
            call.metadata = {k: self.redact(v) for k, v in call.metadata.items()}
        if self.config.redact_texts:
            call.texts = {k: self.redact(v) if v else v for k, v in call.texts.items()}


class Enricher:
    """Adds content facts as metadata: digest, characters, approximate tokens.

    Approximate tokens are UTF-8 bytes / 4, rounded up: a tokenizer-free, language-agnostic
    estimate close to what BPE tokenizers give for English and an upper bound for most scripts.
    """

    def __init__(self, name: str, config: EnricherConfig) -> None:
        self.name = name
        self.config = config

    def handle(self, call: HookCall) -> None:
        if call.content is None:
            return
        raw = call.content.encode()
        facts = {
            "content_sha256": hashlib.sha256(raw).hexdigest(),
            "chars": str(len(call.content)),
            "approx_tokens": str((len(raw) + 3) // 4),
        }
        for field in self.config.fields:
            call.metadata[self.config.prefix + field] = facts[field]


class Quota:
    """Per-session write limits: nodes a session may hold, and writes per minute.

    Node counts come from the store (a bounded index scan) the first time a session is seen and
    are then kept in memory, refreshed every `refresh_seconds`.
    """

    def __init__(
        self,
        name: str,
        config: QuotaConfig,
        count_nodes: Callable[[str, int], int],
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_seconds: float = 60.0,
    ) -> None:
        self.name = name
        self.config = config
        self.count_nodes = count_nodes
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}
        self._windows: dict[str, tuple[float, int]] = {}

    def handle(self, call: HookCall) -> None:
        session = call.session_id
        if not session:
            return
        now = self.clock()
        config = self.config
        with self._lock:
            if config.max_writes_per_minute is not None:
                start, used = self._windows.get(session, (now, 0))
                if now - start >= 60:
                    start, used = now, 0
                if used >= config.max_writes_per_minute:
                    raise PluginRejected(
                        self.name,
                        f"session {session} used its {config.max_writes_per_minute} writes "
                        "for this minute",
                        Code.RESOURCE_EXHAUSTED,
                    )
                self._windows[session] = (start, used + 1)
            if config.max_nodes_per_session is not None:
                limit = config.max_nodes_per_session
                count, seen = self._counts.get(session, (-1, 0.0))
                if count < 0 or now - seen > self.refresh_seconds:
                    count, seen = self.count_nodes(session, limit + 1), now
                if count >= limit:
                    raise PluginRejected(
                        self.name,
                        f"session {session} already holds {limit} nodes, its quota",
                        Code.RESOURCE_EXHAUSTED,
                    )
                self._counts[session] = (count + 1, seen)
