"""What a plugin is handed at a hook point, and the refusal it raises.

Before-hooks run before anything is written, in plugin order; they may change the call's
`content` and `metadata` (the change is what gets stored) or refuse the call. After-hooks run
once the change is committed and can neither fail nor undo it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from memorygraph.errors import Code, RequestError
from memorygraph.plugins.schema import Hook

__all__ = ["Hook", "HookCall", "PluginRejected"]


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


class PluginRejected(RequestError):
    """A before-hook refused the call; nothing was written."""

    def __init__(
        self,
        plugin: str,
        reason: str,
        code: Code = Code.FAILED_PRECONDITION,
    ) -> None:
        super().__init__(f"rejected by plugin {plugin!r}: {reason}")
        self.plugin = plugin
        self.reason = reason
        self.code = code
