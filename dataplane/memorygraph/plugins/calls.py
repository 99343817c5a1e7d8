"""What a plugin is handed at a hook point, and the refusal it raises.

Before-hooks run before anything is written, in plugin order; they may change the call's
`content`, `metadata` and `texts` (the change is what gets stored) or refuse the call.
After-hooks run once the change is committed and can neither fail nor undo it.
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
    "archive"). `content`, `metadata` and `texts` are what a before-hook may change: `texts`
    holds every other text the user wrote for a session or node (a session's user_id, agent_id
    and model; a prompt's model and role; a response's model and finish_reason; a tool
    invocation's tool_name, arguments and result; an agent's name, description and
    `capabilities[i]`), by field name. `details` carries the rest (ids, filters, counts, and
    the same texts as they were asked for) for plugins to read.
    """

    hook: Hook
    subject: str
    session_id: str = ""
    node_id: str = ""
    content: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)

    def copy(self) -> HookCall:
        """A copy a plugin may change freely: content, metadata and texts are what plugins
        change; `details` is theirs to read."""
        return HookCall(
            self.hook,
            self.subject,
            self.session_id,
            self.node_id,
            self.content,
            dict(self.metadata),
            dict(self.details),
            dict(self.texts),
        )

    def to_json(self) -> dict[str, Any]:
        """The call as a webhook receives it; text fields in `details` show what `texts` holds
        now, so no plugin sees a value an earlier one redacted."""
        return {
            "hook": self.hook.value,
            "subject": self.subject,
            "session_id": self.session_id,
            "node_id": self.node_id,
            "content": self.content,
            "metadata": dict(self.metadata),
            "details": _shown(self.details, self.texts) if self.texts else self.details,
            "texts": dict(self.texts),
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


def _shown(details: dict[str, Any], texts: dict[str, str]) -> dict[str, Any]:
    """`details` with the text fields it repeats as `texts` has them now."""
    shown = dict(details)
    for name, value in texts.items():
        field_name, _, index = name.partition("[")
        if not index:
            if field_name in shown:
                shown[field_name] = value
            continue
        items = shown.get(field_name)
        position = int(index.rstrip("]")) if index.rstrip("]").isdigit() else -1
        if isinstance(items, list) and 0 <= position < len(items):
            items = shown[field_name] = list(items)
            items[position] = value
    return shown


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
