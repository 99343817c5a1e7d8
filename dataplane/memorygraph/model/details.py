"""What each kind of node holds beyond the fields every node has: typed details per kind.

A session carries its state, its owner and its token totals; a response the prompt it answers
and its token usage; a template its variables; and so on. Adding a field to a kind is one field
here and one line in the protobuf codec (`memorygraph.codec.nodes`); `details_fields` and
`details_from_fields`, the plain-data form used by exports and plugins, and `details_texts` /
`with_texts`, the text fields plugins may change, follow the dataclass fields by themselves.

Ids are 16 raw bytes here, as everywhere in the domain; the plain-data form writes them as text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, get_type_hints

from memorygraph.model.ids import format_id, parse_id
from memorygraph.model.kinds import NodeKind, SessionState, ToolStatus

__all__ = [
    "AgentDetails",
    "NodeDetails",
    "PromptDetails",
    "ResponseDetails",
    "SessionDetails",
    "TemplateDetails",
    "TemplateVariable",
    "TokenUsage",
    "ToolInvocationDetails",
    "default_details",
    "details_fields",
    "details_from_fields",
    "details_texts",
    "with_texts",
]


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens one response used, or the sum over many (a session's totals, the graph's)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
        )

    def __sub__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.prompt_tokens - other.prompt_tokens,
            self.completion_tokens - other.completion_tokens,
            self.total_tokens - other.total_tokens,
        )

    def with_total(self) -> TokenUsage:
        """The usage with its total filled in as prompt + completion when none was given."""
        if self.total_tokens:
            return self
        return TokenUsage(
            self.prompt_tokens, self.completion_tokens, self.prompt_tokens + self.completion_tokens
        )


@dataclass(frozen=True, slots=True)
class TemplateVariable:
    name: str
    description: str = ""
    required: bool = False
    default_value: str = ""
    pattern: str = ""


@dataclass(frozen=True, slots=True)
class SessionDetails:
    # Every field is part of a session's plain-data form, set or not.
    COMPLETE: ClassVar[bool] = True

    state: SessionState = SessionState.ACTIVE
    user_id: str = ""
    agent_id: str = ""
    model: str = ""
    close_time: int = 0  # microseconds; 0 while the session is active
    token_usage: TokenUsage = TokenUsage()  # the totals of the session's responses


@dataclass(frozen=True, slots=True)
class PromptDetails:
    COMPLETE: ClassVar[bool] = False

    model: str = ""
    role: str = ""
    template_id: bytes | None = None  # the template it was instantiated from


@dataclass(frozen=True, slots=True)
class ResponseDetails:
    COMPLETE: ClassVar[bool] = False

    prompt_id: bytes | None = None
    model: str = ""
    token_usage: TokenUsage = TokenUsage()
    finish_reason: str = ""
    latency_ms: int = 0


@dataclass(frozen=True, slots=True)
class ToolInvocationDetails:
    COMPLETE: ClassVar[bool] = False

    response_id: bytes | None = None
    tool_name: str = ""
    arguments: str = ""
    result: str = ""
    status: ToolStatus = ToolStatus.UNSPECIFIED
    duration_ms: int = 0


@dataclass(frozen=True, slots=True)
class AgentDetails:
    COMPLETE: ClassVar[bool] = False

    name: str = ""
    description: str = ""
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TemplateDetails:
    COMPLETE: ClassVar[bool] = True

    name: str = ""
    variables: tuple[TemplateVariable, ...] = ()
    usage_count: int = 0


NodeDetails = (
    SessionDetails
    | PromptDetails
    | ResponseDetails
    | ToolInvocationDetails
    | AgentDetails
    | TemplateDetails
)

D = TypeVar("D", bound=NodeDetails)

DETAILS_TYPES: dict[NodeKind, type[NodeDetails]] = {
    NodeKind.SESSION: SessionDetails,
    NodeKind.PROMPT: PromptDetails,
    NodeKind.RESPONSE: ResponseDetails,
    NodeKind.TOOL_INVOCATION: ToolInvocationDetails,
    NodeKind.AGENT: AgentDetails,
    NodeKind.TEMPLATE: TemplateDetails,
}
KINDS_OF_DETAILS: dict[type[NodeDetails], NodeKind] = {
    cls: kind for kind, cls in DETAILS_TYPES.items()
}
_DEFAULTS: dict[NodeKind, NodeDetails] = {kind: cls() for kind, cls in DETAILS_TYPES.items()}
_USAGE_FIELDS = tuple(f.name for f in dataclasses.fields(TokenUsage))
# Field types by name, ClassVars left out (the annotations are strings in this module).
_HINTS: dict[type[NodeDetails], dict[str, Any]] = {
    cls: {f.name: get_type_hints(cls)[f.name] for f in dataclasses.fields(cls)}
    for cls in DETAILS_TYPES.values()
}


# The text fields of each kind: strings, and lists of strings (their items are named
# `name[i]`). Ids, counts and states are not text.
_TEXTS: dict[type, tuple[str, ...]] = {
    cls: tuple(name for name, hint in hints.items() if hint is str) for cls, hints in _HINTS.items()
}
_TEXT_LISTS: dict[type, tuple[str, ...]] = {
    cls: tuple(name for name, hint in hints.items() if hint == tuple[str, ...])
    for cls, hints in _HINTS.items()
}
# (name, default) of each kind's fields, in order: `dataclasses.fields` works them out anew
# at every call, and plugins read the details of every node created.
_FIELDS: dict[type, tuple[tuple[str, Any], ...]] = {
    cls: tuple((f.name, f.default) for f in dataclasses.fields(cls))
    for cls in DETAILS_TYPES.values()
}


def default_details(kind: NodeKind) -> NodeDetails:
    """The details of a node of `kind` for which nothing was given."""
    return _DEFAULTS[kind]


def details_texts(details: NodeDetails) -> dict[str, str]:
    """The text fields of `details` by name (the items of a list of strings as `name[i]`):
    what a user wrote, for plugins to read, redact or refuse."""
    texts = {name: getattr(details, name) for name in _TEXTS[type(details)]}
    for name in _TEXT_LISTS[type(details)]:
        for i, value in enumerate(getattr(details, name)):
            texts[f"{name}[{i}]"] = value
    return texts


def with_texts(details: D, texts: Mapping[str, str]) -> D:
    """`details` with its text fields as `texts` gives them (`details_texts`' inverse; fields
    `texts` leaves out stay as they are)."""
    cls = type(details)
    changes: dict[str, Any] = {
        name: texts[name]
        for name in _TEXTS[cls]
        if name in texts and texts[name] != getattr(details, name)
    }
    for name in _TEXT_LISTS[cls]:
        items = getattr(details, name)
        new = tuple(texts.get(f"{name}[{i}]", value) for i, value in enumerate(items))
        if new != items:
            changes[name] = new
    return dataclasses.replace(details, **changes) if changes else details


# -- the plain-data form (exports, plugins) ------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return format_id(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, TemplateVariable):
        return dataclasses.asdict(value)
    if isinstance(value, ToolStatus | SessionState):
        return value.value
    return value


def details_fields(details: NodeDetails, *, sparse: bool = False) -> dict[str, Any]:
    """`details` as plain data: ids as text, token usage as its three counts.

    Sessions and templates give every field; other kinds give the fields that are set, and a
    response its token counts always — unless `sparse`, which gives those too only when set
    (a request's details, before the server fills anything in)."""
    complete = details.COMPLETE
    fields: dict[str, Any] = {}
    for name, default in _FIELDS[type(details)]:
        value = getattr(details, name)
        if isinstance(value, TokenUsage):
            for usage in _USAGE_FIELDS:
                count = getattr(value, usage)
                if count or complete or not sparse:
                    fields[usage] = count
        elif complete or value != default:
            fields[name] = _plain(value)
    return fields


def _id_or_none(value: Any, name: str) -> bytes | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an id as text")
    return parse_id(value, name)


def _typed(name: str, hint: Any, value: Any) -> Any:
    """`value` from plain data as the type `hint`; ValueError when it cannot be."""
    if hint == bytes | None:
        return _id_or_none(value, name)
    if hint in (SessionState, ToolStatus):
        return hint(value)
    if hint == tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{name} must be a list of strings")
        return tuple(value)
    if hint == tuple[TemplateVariable, ...]:
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ValueError(f"{name} must be a list of objects")
        return tuple(TemplateVariable(**v) for v in value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ValueError(f"{name} must be of type {hint.__name__}")
    return value


def details_from_fields(kind: NodeKind, fields: Mapping[str, Any]) -> NodeDetails:
    """The details of a `kind` node from their plain-data form (`details_fields`).

    ValueError names a field that this kind does not have or whose value has the wrong type;
    fields left out keep their defaults."""
    cls = DETAILS_TYPES[kind]
    values: dict[str, Any] = {}
    usage: dict[str, Any] = {}
    hints = _HINTS[cls]
    for name, value in fields.items():
        if name in _USAGE_FIELDS and "token_usage" in hints:
            usage[name] = _typed(name, int, value)
        elif name in hints:
            values[name] = _typed(name, hints[name], value)
        else:
            raise ValueError(f"a {kind} has no field {name!r}")
    if usage:
        values["token_usage"] = TokenUsage(**usage)
    try:
        return cls(**values)
    except TypeError as exc:  # a template variable with unknown or missing fields
        raise ValueError(str(exc)) from None
