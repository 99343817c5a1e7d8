"""Hook points and what a plugin is handed at each of them.

Before-hooks run before anything is written, in plugin order; they may change the call's
`content` and `metadata` (the change is what gets stored) or refuse the call. After-hooks run
once the change is committed and can neither fail nor undo it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import grpc

from memorygraph.errors import RequestError

__all__ = ["Hook", "HookCall", "PluginRejected"]


class Hook(StrEnum):
    BEFORE_CREATE_SESSION = "before_create_session"
    AFTER_CREATE_SESSION = "after_create_session"
    BEFORE_CLOSE_SESSION = "before_close_session"
    AFTER_CLOSE_SESSION = "after_close_session"
    BEFORE_DELETE_SESSION = "before_delete_session"
    AFTER_DELETE_SESSION = "after_delete_session"
    BEFORE_CREATE_NODE = "before_create_node"
    AFTER_CREATE_NODE = "after_create_node"
    BEFORE_UPDATE_NODE = "before_update_node"
    AFTER_UPDATE_NODE = "after_update_node"
    BEFORE_DELETE_NODE = "before_delete_node"
    AFTER_DELETE_NODE = "after_delete_node"
    BEFORE_CREATE_EDGE = "before_create_edge"
    AFTER_CREATE_EDGE = "after_create_edge"
    BEFORE_DELETE_EDGE = "before_delete_edge"
    AFTER_DELETE_EDGE = "after_delete_edge"
    BEFORE_INSTANTIATE_TEMPLATE = "before_instantiate_template"
    AFTER_INSTANTIATE_TEMPLATE = "after_instantiate_template"
    BEFORE_QUERY = "before_query"
    AFTER_QUERY = "after_query"
    BEFORE_ARCHIVE = "before_archive"
    AFTER_ARCHIVE = "after_archive"

    @property
    def is_before(self) -> bool:
        return self.value.startswith("before_")


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
        code: grpc.StatusCode = grpc.StatusCode.FAILED_PRECONDITION,
    ) -> None:
        super().__init__(f"rejected by plugin {plugin!r}: {reason}")
        self.plugin = plugin
        self.reason = reason
        self.code = code
