"""The data-plane image as the pods run it: its name, ports, paths, uid and security settings.

These are the image's side of the contract (``tests/operator/test_image.py`` holds the Dockerfile
to them): they change when the image changes, not when the API does.
"""

from __future__ import annotations

from typing import Any

from memorygraph_operator import __version__

__all__ = [
    "CONFIG_DIR",
    "DATA_MOUNT",
    "DEFAULT_IMAGE",
    "GRPC_PORT",
    "IMAGE_REPOSITORY",
    "METRICS_PORT",
    "PEER_PORT",
    "RUN_AS",
    "container_security_context",
    "pod_security_context",
]

IMAGE_REPOSITORY = "ghcr.io/memorygraph/memorygraph"
# The image of the release the operator belongs to (the chart's appVersion is the same).
DEFAULT_IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"
GRPC_PORT = 50051
METRICS_PORT = 9090
PEER_PORT = 50052  # where a graph's pods call each other
RUN_AS = 65532
CONFIG_DIR = "/etc/memorygraph"
DATA_MOUNT = "/var/lib/memorygraph"


def pod_security_context() -> dict[str, Any]:
    """Pod-level settings of the restricted Pod Security Standard."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Container-level settings of the restricted Pod Security Standard."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
