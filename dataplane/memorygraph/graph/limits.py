"""How much one thing in the graph may hold: the size of every text field, the number of items in
its lists, and the range of its counts and times.

Every way of writing (the RPCs, Ingest, restores of an export) checks what it is about to store
against the same `Limits`, after the plugins have changed it, so nothing reaches the store that
the store cannot encode or that a response could not carry. The checks are length comparisons:
a string is encoded only when it may be over its limit (UTF-8 takes at most 4 bytes a character).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sized
from dataclasses import dataclass
from typing import Any

from memorygraph.codec.nodes import encode_node
from memorygraph.errors import InvalidArgument
from memorygraph.model import (
    MAX_TIME,
    AgentDetails,
    NewSession,
    Node,
    NodeDetails,
    PromptDetails,
    ResponseDetails,
    SessionDetails,
    TemplateDetails,
    TokenUsage,
    ToolInvocationDetails,
)

__all__ = ["FRAMING", "INT64_MAX", "Limits"]

INT64_MAX = 2**63 - 1
# What a node takes in a response beyond its record: the tag and length of a repeated field.
FRAMING = 6
_INT64_MIN = -(2**63)

# Which limit each text field of the node details has: free text the size of content, longer
# descriptions, or names (everything else: models, roles, user ids, tool names, ...).
_CONTENT, _TEXT, _NAME = "max_content_bytes", "max_text_bytes", "max_name_bytes"
_TEXT_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {
    PromptDetails: (("model", _NAME), ("role", _NAME)),
    ResponseDetails: (("model", _NAME), ("finish_reason", _NAME)),
    ToolInvocationDetails: (("tool_name", _NAME), ("arguments", _CONTENT), ("result", _CONTENT)),
    AgentDetails: (("name", _NAME), ("description", _TEXT)),
    SessionDetails: (("user_id", _NAME), ("agent_id", _NAME), ("model", _NAME)),
    TemplateDetails: (("name", _NAME),),
}
_VARIABLE_FIELDS = (
    ("name", _NAME),
    ("description", _TEXT),
    ("default_value", _TEXT),
    ("pattern", _TEXT),
)
_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits on what one node, edge or session may hold, and on one response message.

    `max_content_bytes` bounds content (a session's title, a template's text) and each of a tool
    invocation's arguments and result; `max_metadata_bytes` one metadata map (keys and values);
    `max_name_bytes` every short text (model, role, user and agent ids, finish reason, tool,
    agent, template and variable names, each capability); `max_text_bytes` descriptions and a
    template variable's default value and pattern; `max_items` the capabilities of an agent
    and the variables of a template. `max_tokens` bounds each token count of one response,
    so that no sum of them can leave the range of a 64-bit count. `max_message_bytes` is the
    largest response: a write whose answer would not fit is refused before it is written."""

    max_content_bytes: int = 1 << 20
    max_metadata_bytes: int = 16 << 10
    max_name_bytes: int = 1 << 10
    max_text_bytes: int = 64 << 10
    max_items: int = 256
    max_tokens: int = 1 << 32
    max_message_bytes: int = 8 << 20

    def check(self, content: str = "", metadata: Mapping[str, str] | None = None) -> None:
        """Content and metadata, the fields every node and edge may have."""
        self.text("content", content, self.max_content_bytes)
        if metadata:
            if any(not key for key in metadata):
                raise InvalidArgument("metadata keys must not be empty")
            total = sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())
            if total > self.max_metadata_bytes:
                raise InvalidArgument(
                    f"metadata is {total} bytes; the limit is {self.max_metadata_bytes} bytes"
                )

    @staticmethod
    def text(name: str, value: str, limit: int) -> None:
        """InvalidArgument naming the field when `value` takes more than `limit` bytes."""
        if len(value) * 4 > limit and (size := len(value.encode())) > limit:
            raise InvalidArgument(f"{name} is {size} bytes; the limit is {limit} bytes")

    def items(self, name: str, values: Sized) -> None:
        if (count := len(values)) > self.max_items:
            raise InvalidArgument(f"{name} has {count} items; the limit is {self.max_items}")

    def session(self, spec: NewSession) -> None:
        """A session to create: its title, metadata and names."""
        self.check(spec.title, spec.metadata)
        self.text("user_id", spec.user_id, self.max_name_bytes)
        self.text("agent_id", spec.agent_id, self.max_name_bytes)
        self.text("model", spec.model, self.max_name_bytes)

    def details(self, details: NodeDetails) -> None:
        """Every text field, list and count of a node's details, but a response's token
        counts (checked once the response's session is known: `tokens`)."""
        for name, limit_name in _TEXT_FIELDS[type(details)]:
            value: str = getattr(details, name)
            limit: int = getattr(self, limit_name)
            if len(value) * 4 > limit:  # otherwise within the limit, whatever it holds
                self.text(name, value, limit)
        more = _MORE.get(type(details))
        if more is not None:
            more(self, details)

    def _response(self, details: ResponseDetails) -> None:
        self.count("latency_ms", details.latency_ms)  # its tokens: see `tokens`

    def _tool(self, details: ToolInvocationDetails) -> None:
        self.count("duration_ms", details.duration_ms)

    def _agent(self, details: AgentDetails) -> None:
        self.items("capabilities", details.capabilities)
        for i, capability in enumerate(details.capabilities):
            self.text(f"capabilities[{i}]", capability, self.max_name_bytes)

    def _session(self, details: SessionDetails) -> None:
        self.tokens(details.token_usage, INT64_MAX)
        self.time("close_time", details.close_time)

    def variables(self, details: TemplateDetails) -> None:
        self.items("variables", details.variables)
        for i, variable in enumerate(details.variables):
            for name, limit in _VARIABLE_FIELDS:
                self.text(f"variables[{i}].{name}", getattr(variable, name), getattr(self, limit))
        self.count("usage_count", details.usage_count, low=0)

    def response(self, nodes: list[Node]) -> None:
        """Encode new `nodes` (their records are what the store writes and a response
        carries) and refuse them, before anything is written, when one response could not."""
        size = 0
        for node in nodes:
            node.record = record = encode_node(node)
            size += len(record) + FRAMING
        if size > self.max_message_bytes:
            raise InvalidArgument(
                f"the response would be {size} bytes, more than the largest message "
                f"({self.max_message_bytes} bytes); nothing was written: create these nodes in "
                "smaller batches"
            )

    @staticmethod
    def tokens(usage: TokenUsage, limit: int) -> None:
        """Each count between 0 and `limit` (`max_tokens` for one response)."""
        for name in _USAGE_FIELDS:
            value = getattr(usage, name)
            if value < 0:
                raise InvalidArgument(f"token counts must not be negative ({name} is {value})")
            if value > limit:
                raise InvalidArgument(f"{name} is {value}; the limit is {limit}")

    @staticmethod
    def count(name: str, value: int, *, low: int = _INT64_MIN) -> None:
        """A count the wire carries as a 64-bit integer (requests always fit; exports may not)."""
        if not low <= value <= INT64_MAX:
            raise InvalidArgument(f"{name} is {value}: out of the range {low}..{INT64_MAX}")

    @staticmethod
    def time(name: str, value: int) -> None:
        """A time in microseconds since the Unix epoch, as the store keeps them."""
        if not 0 <= value < MAX_TIME:
            raise InvalidArgument(f"{name} {value} is not a time the graph can hold")


# What each kind has beyond its text fields (prompts have nothing more).
_MORE: dict[type, Callable[[Limits, Any], None]] = {
    ResponseDetails: Limits._response,
    ToolInvocationDetails: Limits._tool,
    AgentDetails: Limits._agent,
    SessionDetails: Limits._session,
    TemplateDetails: Limits.variables,
}
