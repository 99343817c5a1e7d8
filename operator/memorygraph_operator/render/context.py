"""What a renderer is given: the graph being rendered and the environment it is rendered for.

Renderers are pure: everything they may depend on is in :class:`GraphInputs` or
:class:`RenderEnv`. Nothing here reads the clock, the process environment or the API.
"""

from __future__ import annotations

from dataclasses import dataclass

from memorygraph_operator.api.memorygraph import MemoryGraphSpec
from memorygraph_operator.api.plugin import PluginSpec
from memorygraph_operator.render.image import DEFAULT_IMAGE

__all__ = ["GraphInputs", "MemberView", "NamedPlugin", "PendingMove", "RenderEnv", "ShardMap"]


@dataclass(frozen=True)
class RenderEnv:
    """What the renderers need to know about the cluster and the operator installation."""

    default_image: str = DEFAULT_IMAGE
    service_monitor_available: bool = False
    cluster_domain: str = "cluster.local"
    # Namespaces whose pods may scrape a graph's metrics when the graph names no sources.
    metrics_namespaces: tuple[str, ...] = ()
    # The operator's own pods (namespace, labels), which ask the graphs' pods on their peer
    # port which shards they serve and move shards between them; None: not known.
    operator_pods: tuple[str, tuple[tuple[str, str], ...]] | None = None


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

    def shard_epoch(self, shard: int) -> int:
        return self.shard_epochs[shard] if self.shard_epochs else 0

    def all_epochs(self) -> tuple[int, ...]:
        """Every shard's epoch (``shard_epochs``, or zeros when none moved)."""
        return self.shard_epochs or (0,) * len(self.owners)

    def spread(self) -> tuple[int, ...]:
        """How many shards each pod owns."""
        counts = [0] * self.members
        for owner in self.owners:
            if owner < self.members:
                counts[owner] += 1
        return tuple(counts)

    def spread_text(self) -> str:
        """The spread as one string: ``22/21/21``."""
        return "/".join(str(c) for c in self.spread())


@dataclass(frozen=True)
class MemberView:
    """What one pod says on its peer port: each shard's owner and shard epoch as it serves
    them, and the epoch and size of the map it serves by."""

    owners: tuple[int, ...]
    epochs: tuple[int, ...]
    map_epoch: int
    members: int
    # A move to this pod left unfinished, (shard, source): it takes no other shard until
    # asked for this one again.
    unfinished: tuple[int, int] | None = None
    # Parts of its writes still to deliver to other pods (it may not leave before).
    undelivered: int = 0


@dataclass(frozen=True)
class PendingMove:
    """A move the operator asked for and has not seen finish: shard ``shard`` from pod
    ``source`` (owning it at shard epoch ``epoch``) to pod ``target``; the failed
    ``attempts`` so far, the last ``error`` a pod answered, and when to ask again at the
    earliest (``retry_at``, seconds since the epoch). Kept in the map's ConfigMap, so an
    operator that restarts finishes it first."""

    shard: int
    source: int
    target: int
    epoch: int
    attempts: int = 0
    error: str = ""
    retry_at: float = 0.0


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
    # The move under way between its pods, if any (recorded with the map).
    move: PendingMove | None = None

    def image_in(self, env: RenderEnv) -> str:
        """Image of the graph's pods in ``env``."""
        return self.spec.image or env.default_image
