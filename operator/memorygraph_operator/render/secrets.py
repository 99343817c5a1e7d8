"""The generated API-key Secret, created once when auth is on without a user Secret."""

from __future__ import annotations

from typing import Any

from memorygraph_operator.render.archival import ARCHIVAL_KEY
from memorygraph_operator.render.context import GraphInputs
from memorygraph_operator.render.metadata import object_meta
from memorygraph_operator.render.names import Names

__all__ = ["needs_generated_auth_secret", "render_auth_secret"]


def needs_generated_auth_secret(g: GraphInputs) -> bool:
    """Whether the operator must generate the API-key Secret for this graph."""
    auth = g.spec.auth
    return auth is not None and auth.enabled and auth.secret_ref is None


def render_auth_secret(g: GraphInputs, client_key: str, archival_key: str) -> dict[str, Any] | None:
    """The generated Secret, or None when the user brings one (or auth is off).

    The keys are parameters because rendering is pure: the caller draws them at random once and
    creates the Secret only if it does not exist yet, so they are never rotated behind a user.
    """
    if not needs_generated_auth_secret(g):
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(g, Names(g.name).auth_secret, "auth"),
        "type": "Opaque",
        "stringData": {
            "api-keys": f"{client_key}\n{archival_key}\n",
            ARCHIVAL_KEY: archival_key,
        },
    }
