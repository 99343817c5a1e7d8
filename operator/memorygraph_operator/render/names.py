"""The names of a graph's children, in one place so that prune and render agree."""

from __future__ import annotations

__all__ = ["Names"]


class Names:
    """Names of every child of a graph."""

    def __init__(self, graph: str) -> None:
        self.statefulset = graph
        self.service = graph
        self.headless_service = f"{graph}-headless"
        self.configmap = f"{graph}-config"
        self.hpa = graph
        self.pdb = graph
        self.service_monitor = graph
        self.cronjob = f"{graph}-archival"
        self.auth_secret = f"{graph}-api-keys"
        self.shard_map = f"{graph}-shards"
        self.peer_secret = f"{graph}-peer"
        self.network_policy = graph
