"""The API-key Secret: which one a graph reads, and the one generated when the user brings none."""

from __future__ import annotations

from typing import Any

from memorygraph_operator.render.context import GraphInputs
from memorygraph_operator.render.metadata import object_meta
from memorygraph_operator.render.names import Names

__all__ = [
    "API_KEYS_KEY",
    "ARCHIVAL_KEY",
    "CLIENT_KEY",
    "PEER_KEY",
    "auth_secret_name",
    "needs_generated_auth_secret",
    "render_auth_secret",
    "render_peer_secret",
]

# Keys of the auth Secret: every accepted key, one per line (what the server reads); the single
# key the archival job presents; and, in the generated Secret, the key for applications.
API_KEYS_KEY = "api-keys"
ARCHIVAL_KEY = "archival-api-key"
CLIENT_KEY = "api-key"
# Key of the peer Secret: the key a graph's pods present to each other's peer ports.
PEER_KEY = "key"


def auth_secret_name(g: GraphInputs) -> str | None:
    """The Secret holding the graph's API keys: the user's, the generated one, or None (off)."""
    if not g.spec.auth_enabled:
        return None
    auth = g.spec.auth
    if auth is not None and auth.secret_ref is not None:
        return auth.secret_ref.name
    return Names(g.name).auth_secret


def needs_generated_auth_secret(g: GraphInputs) -> bool:
    """Whether the operator must generate the API-key Secret for this graph."""
    auth = g.spec.auth
    return g.spec.auth_enabled and (auth is None or auth.secret_ref is None)


def render_auth_secret(g: GraphInputs, client_key: str, archival_key: str) -> dict[str, Any] | None:
    """The generated Secret, or None when the user brings one (or auth is off).

    The keys are parameters because rendering is pure: the caller draws them at random once and
    creates the Secret only if it does not exist yet, so they are never rotated behind a user.
    Applications read ``api-key``; the server reads ``api-keys``, which holds both.
    """
    if not needs_generated_auth_secret(g):
        return None
    keys = {
        CLIENT_KEY: client_key,
        API_KEYS_KEY: f"{client_key}\n{archival_key}\n",
        ARCHIVAL_KEY: archival_key,
    }
    return _secret(g, Names(g.name).auth_secret, "auth", keys)


def _secret(g: GraphInputs, name: str, component: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(g, name, component),
        "type": "Opaque",
        "stringData": data,
    }


def render_peer_secret(g: GraphInputs, key: str) -> dict[str, Any] | None:
    """The Secret with the key the graph's pods present to each other, or None when the graph
    has no shard map (its pods do not call each other). Like the API keys, ``key`` is drawn by
    the caller, which creates the Secret once."""
    if g.shard_map is None:
        return None
    return _secret(g, Names(g.name).peer_secret, "peer", {PEER_KEY: key})
