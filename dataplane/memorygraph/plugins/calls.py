"""What a plugin is handed at a hook point, and the refusal it raises.

Before-hooks run before anything is written, in plugin order; they may change the call's
`content` and `metadata` (the change is what gets stored) or refuse the call. After-hooks run
once the change is committed and can neither fail nor undo it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

from memorygraph.errors import Code, RequestError
from memorygraph.plugins.schema import Hook

__all__ = ["MAX_REASON_CHARS", "Hook", "HookCall", "PluginRejected", "clean_reason"]

# A refusal's reason reaches a status message and log lines: at most this many characters.
MAX_REASON_CHARS = 500
# Control and format characters (newlines, escapes, bidirectional overrides), line and
# paragraph separators, and lone surrogates: none of them belongs in one line of text.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


@dataclass
class HookCall:
    """One hook invocation.

    `subject` says what the call is about ("session", a node kind, "edge", "template", "query",
    "archive"). `content` and `metadata` are what a before-hook may change; `details` carries the
    rest (model, ids, filters, counts) for plugins to read.
    """

    hook: Hook
    subject: str
    session_id: str = ""
    node_id: str = ""
    content: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def copy(self) -> HookCall:
        """A copy a plugin may change freely: content and metadata are what plugins change;
        `details` is theirs to read."""
        return HookCall(
            self.hook,
            self.subject,
            self.session_id,
            self.node_id,
            self.content,
            dict(self.metadata),
            dict(self.details),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "hook": self.hook.value,
            "subject": self.subject,
            "session_id": self.session_id,
            "node_id": self.node_id,
            "content": self.content,
            "metadata": dict(self.metadata),
            "details": self.details,
        }


def clean_reason(reason: str) -> str:
    """`reason` as one line of at most `MAX_REASON_CHARS` printable characters: a plugin's
    words (a webhook's among them) cannot forge a log line or fill a status message."""
    head = reason[: MAX_REASON_CHARS * 2]
    text = "".join(" " if unicodedata.category(c) in _UNPRINTABLE else c for c in head)
    text = " ".join(text.split())
    if len(text) > MAX_REASON_CHARS or len(reason) > len(head):
        text = text[: MAX_REASON_CHARS - 1].rstrip() + "…"
    return text or "no reason given"


class PluginRejected(RequestError):
    """A before-hook refused the call; nothing was written. The reason is cleaned
    (`clean_reason`) before it goes into the message."""

    def __init__(
        self,
        plugin: str,
        reason: str,
        code: Code = Code.FAILED_PRECONDITION,
    ) -> None:
        reason = clean_reason(reason)
        super().__init__(f"rejected by plugin {plugin!r}: {reason}")
        self.plugin = plugin
        self.reason = reason
        self.code = code
