"""What a renderer is given: the graph being rendered and the environment it is rendered for.

Renderers are pure: everything they may depend on is in :class:`GraphInputs` or
:class:`RenderEnv`. Nothing here reads the clock, the process environment or the API.
"""

from __future__ import annotations

from dataclasses import dataclass

from memorygraph_operator.api.memorygraph import MemoryGraphSpec
from memorygraph_operator.api.plugin import PluginSpec
from memorygraph_operator.render.image import DEFAULT_IMAGE

__all__ = ["GraphInputs", "NamedPlugin", "RenderEnv", "ShardMap"]


@dataclass(frozen=True)
class RenderEnv:
    """What the renderers need to know about the cluster and the operator installation."""

    default_image: str = DEFAULT_IMAGE
    service_monitor_available: bool = False
    cluster_domain: str = "cluster.local"
    # Namespaces whose pods may scrape a graph's metrics when the graph names no sources.
    metrics_namespaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class NamedPlugin:
    """A Plugin resource selected by a graph: its name and validated spec."""

    name: str
    spec: PluginSpec


@dataclass(frozen=True)
class ShardMap:
    """What the map says: its epoch, each shard's owner, how many pods it names, and each
    shard's own epoch (raised by each move of it between pods; () when none moved)."""

    epoch: int
    owners: tuple[int, ...]
    members: int
    shard_epochs: tuple[int, ...] = ()

    @property
    def floor(self) -> int:
        """The fewest pods the map can shrink to: up to the last one owning a shard."""
        return max(self.owners, default=0) + 1


@dataclass(frozen=True)
class GraphInputs:
    """One MemoryGraph as the renderers see it."""

    name: str
    namespace: str
    uid: str
    spec: MemoryGraphSpec
    plugins: tuple[NamedPlugin, ...] = ()
    restarted_at: str | None = None
    # The shard map the operator writes for it (`render.shardmap`); None: its pods each serve
    # a store of their own, as before maps.
    shard_map: ShardMap | None = None

    def image_in(self, env: RenderEnv) -> str:
        """Image of the graph's pods in ``env``."""
        return self.spec.image or env.default_image
