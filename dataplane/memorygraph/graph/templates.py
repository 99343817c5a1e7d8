"""Prompt templates: validating a template and rendering it with variables (RE2 patterns).

Pure functions over plain data; the service layer stores templates and counts their use.
Placeholders are ``{{name}}`` (spaces inside the braces allowed).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import re2  # type: ignore[import-untyped]

from memorygraph.errors import InvalidArgument
from memorygraph.model import TemplateVariable

__all__ = ["render_template", "validate_template"]

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_NAME_LENGTH = 200

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def _compile(variable: TemplateVariable) -> Any:
    try:
        return re2.compile(variable.pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise InvalidArgument(
            f"variable {variable.name!r}: pattern {variable.pattern!r} is not a valid RE2 "
            f"expression: {reason}"
        ) from None


def validate_template(name: str, content: str, variables: Sequence[TemplateVariable]) -> None:
    """Raise `InvalidArgument` for anything that would make the template unusable."""
    if not name.strip():
        raise InvalidArgument("template name is required")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidArgument(f"template name is longer than {MAX_NAME_LENGTH} characters")
    if not content.strip():
        raise InvalidArgument("template content is required")
    seen: set[str] = set()
    for variable in variables:
        if not VARIABLE_NAME.fullmatch(variable.name):
            raise InvalidArgument(
                f"variable name {variable.name!r} is invalid: use letters, digits and "
                "underscores, not starting with a digit"
            )
        if variable.name in seen:
            raise InvalidArgument(f"variable {variable.name!r} is declared twice")
        seen.add(variable.name)
        if variable.pattern:
            regex = _compile(variable)
            if variable.default_value and not regex.fullmatch(variable.default_value):
                raise InvalidArgument(
                    f"variable {variable.name!r}: default value {variable.default_value!r} "
                    f"does not match its pattern {variable.pattern!r}"
                )
    undeclared = sorted({m.group(1) for m in PLACEHOLDER.finditer(content)} - seen)
    if undeclared:
        raise InvalidArgument(
            "template content uses undeclared variables: " + ", ".join(undeclared)
        )


def render_template(
    content: str, variables: Sequence[TemplateVariable], values: dict[str, str]
) -> str:
    """The content with every placeholder replaced; `InvalidArgument` lists what is wrong."""
    declared = {v.name: v for v in variables}
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise InvalidArgument("unknown template variables: " + ", ".join(unknown))
    missing = sorted(
        v.name for v in variables if v.required and v.name not in values and not v.default_value
    )
    if missing:
        raise InvalidArgument("missing required template variables: " + ", ".join(missing))
    resolved: dict[str, str] = {}
    for variable in variables:
        value = values.get(variable.name, variable.default_value)
        given = variable.name in values
        if variable.pattern and given and not _compile(variable).fullmatch(value):
            raise InvalidArgument(
                f"variable {variable.name!r}: value {value[:100]!r} does not match "
                f"pattern {variable.pattern!r}"
            )
        resolved[variable.name] = value
    return PLACEHOLDER.sub(lambda m: resolved[m.group(1)], content)
