"""The data plane's configuration: ``memorygraph.yaml``, ``plugins.yaml`` and their ConfigMap.

The file formats are the data plane's contract (snake_case keys, lower-case enum values); the
server rejects unknown keys, so only keys it knows are ever written here.
"""

from __future__ import annotations

import hashlib
from typing import Any

import yaml

from memorygraph_operator.api.memorygraph import DEFAULT_SHARDS
from memorygraph_operator.render.context import GraphInputs, NamedPlugin
from memorygraph_operator.render.image import (
    CONFIG_DIR,
    DATA_MOUNT,
    GRPC_PORT,
    METRICS_PORT,
    PEER_PORT,
)
from memorygraph_operator.render.metadata import object_meta
from memorygraph_operator.render.names import Names

__all__ = [
    "AUTH_DIR",
    "PEER_DIR",
    "PLUGIN_SECRETS_DIR",
    "REGISTRY_DIR",
    "SHARD_MAP_DIR",
    "TLS_DIR",
    "config_hash",
    "plugin_entry",
    "render_configmap",
    "render_plugins_yaml",
    "render_server_yaml",
]

AUTH_DIR = f"{CONFIG_DIR}/auth"
TLS_DIR = f"{CONFIG_DIR}/tls"
REGISTRY_DIR = f"{CONFIG_DIR}/registry"
PLUGIN_SECRETS_DIR = f"{CONFIG_DIR}/plugin-secrets"
SHARD_MAP_DIR = f"{CONFIG_DIR}/shards"
PEER_DIR = f"{CONFIG_DIR}/peer"


def _dump(data: dict[str, Any]) -> str:
    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def render_server_yaml(g: GraphInputs) -> str:
    """``memorygraph.yaml``: the server settings derived from the spec."""
    spec = g.spec
    config: dict[str, Any] = {
        "data_dir": f"{DATA_MOUNT}/data",
        "port": GRPC_PORT,
        "metrics_port": METRICS_PORT,
        "durability": spec.durability.lower(),
        "log_level": spec.log_level.lower(),
        "auth": {"enabled": spec.auth_enabled},
        "plugins_file": f"{CONFIG_DIR}/plugins.yaml",
    }
    if spec.shards != DEFAULT_SHARDS:
        # Left out at the default, which is also the data plane's for a new directory (and
        # every directory made before the setting has it): the file, and so the pods, of
        # such graphs stay as they were.
        config["shards"] = spec.shards
    if spec.pin_cpus:  # left out when off, so that the file of every other graph stays as it was
        config["pin_cpus"] = True
    if spec.auth_enabled:
        config["auth"]["api_keys_file"] = f"{AUTH_DIR}/api-keys"
    if spec.tls is not None:
        config["tls"] = {
            "cert_file": f"{TLS_DIR}/tls.crt",
            "key_file": f"{TLS_DIR}/tls.key",
        }
        if spec.tls.require_client_certificate:
            config["tls"]["client_ca_file"] = f"{TLS_DIR}/ca.crt"
    if g.shard_map is not None:
        # Which shards this pod serves, and how it reaches the others (the map's epochs come
        # and go in its own ConfigMap, without touching this file or rolling the pods).
        config["cluster"] = {
            "map_file": f"{SHARD_MAP_DIR}/map.json",
            "peer_port": PEER_PORT,
            "peer_key_file": f"{PEER_DIR}/key",
        }
    if spec.registry is not None:
        config["registry"] = {"url": spec.registry.url}
        if spec.registry.secret_ref is not None:
            config["registry"]["token_file"] = f"{REGISTRY_DIR}/token"
    return _dump(config)


def plugin_entry(p: NamedPlugin) -> dict[str, Any]:
    """One plugin as the data plane's ``plugins.yaml`` lists it (snake_case, lower-case type)."""
    s = p.spec
    config: dict[str, Any] = dict(s.config or {})
    if s.webhook is not None:
        config["url"] = s.webhook.url
        if s.webhook.ca_bundle:
            config["ca_bundle"] = s.webhook.ca_bundle
        if s.webhook.token_secret_ref is not None:
            config["token_file"] = f"{PLUGIN_SECRETS_DIR}/{p.name}/token"
    return {
        "name": p.name,
        "type": s.type.lower(),
        "enabled": s.enabled,
        "order": s.order,
        "timeout_seconds": s.timeout_seconds,
        "failure_policy": s.failure_policy,
        "hooks": list(s.hooks),
        "config": config,
    }


def render_plugins_yaml(g: GraphInputs) -> str:
    """``plugins.yaml``: the selected plugins in execution order (order, then name)."""
    ordered = sorted(g.plugins, key=lambda p: (p.spec.order, p.name))
    return _dump({"version": 1, "plugins": [plugin_entry(p) for p in ordered]})


def config_hash(g: GraphInputs) -> str:
    """Hash of ``memorygraph.yaml`` only, stamped on the pod template.

    ``plugins.yaml`` is deliberately left out: the server reloads it when the mounted file
    changes, so a plugin edit must not restart every pod of every graph using the plugin.
    """
    return hashlib.sha256(render_server_yaml(g).encode()).hexdigest()[:16]


def render_configmap(g: GraphInputs) -> dict[str, Any]:
    """The ConfigMap mounted at /etc/memorygraph."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(g, Names(g.name).configmap, "config"),
        "data": {
            "memorygraph.yaml": render_server_yaml(g),
            "plugins.yaml": render_plugins_yaml(g),
        },
    }
