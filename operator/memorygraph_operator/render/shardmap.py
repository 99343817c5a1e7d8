"""The graph's shard map: which pod owns which shard, at which epoch.

The operator is its only writer. It lives in the ConfigMap ``<graph>-shards`` (key
``map.json``), which every pod mounts and reads again while it serves; its format is the data
plane's (graph UID, shards, epoch, each shard's owner, each member's client and peer address,
and each shard's own epoch once a shard moved between pods, which every later map keeps).

:func:`plan_shard_map` decides the next map from the one the API server holds:

- a new graph spreads its shards over its pods (shard s on pod s mod replicas; with autoscaling,
  mod minReplicas, so that the autoscaler's scale-ins are never held), epoch 1;
- a graph made before the map, served by at most one pod, gets every shard on pod 0 (that pod's
  volume holds them all); one served by several pods has independent stores that no map can
  describe, and keeps running as it was (:data:`INDEPENDENT_STORES`);
- scaling out adds pods at the end of the map, owning nothing yet, at the next epoch (the
  operator then moves shards onto them, see :mod:`.placement`);
- scaling in drops pods from the end only once they own no shard and no move under way goes
  to them: until the moves have emptied them, the map keeps them.

The move under way, if any, is kept in the same ConfigMap (key ``move.json``), which the pods
do not read: an operator that restarts finishes it before it plans another.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from memorygraph_operator.api.conditions import Reason
from memorygraph_operator.render.context import GraphInputs, PendingMove, ShardMap
from memorygraph_operator.render.image import GRPC_PORT, PEER_PORT
from memorygraph_operator.render.metadata import object_meta
from memorygraph_operator.render.names import Names

__all__ = [
    "INDEPENDENT_STORES",
    "MOVE_KEY",
    "SHARD_MAP_KEY",
    "MapPlan",
    "ShardMap",
    "member_address",
    "parse_move",
    "parse_shard_map",
    "plan_shard_map",
    "render_shard_map",
]

SHARD_MAP_KEY = "map.json"
MOVE_KEY = "move.json"
INDEPENDENT_STORES = (
    "the graph's pods were made before shards were placed on pods and each holds a store of "
    "its own, which no shard map can place: they keep serving as before, each its own data, "
    "until the sessions are exported and restored into a new graph"
)


@dataclass(frozen=True)
class MapPlan:
    """The map to write (None: the graph keeps running without one, see ``held``) and, when
    the graph cannot have the pods its spec asks for, the Degraded reason and message."""

    shard_map: ShardMap | None
    held: tuple[Reason, str] | None = None


def parse_shard_map(data: str | None) -> ShardMap | None:
    """The map a ConfigMap holds (None when it holds none this operator wrote)."""
    if not data:
        return None
    try:
        raw = json.loads(data)
        owners = tuple(int(o) for o in raw["owners"])
        epochs = tuple(int(e) for e in raw.get("shard_epochs", ()))
        if len(epochs) not in (0, len(owners)):
            return None
        return ShardMap(int(raw["epoch"]), owners, len(raw["members"]), epochs)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def parse_move(data: str | None, m: ShardMap | None) -> PendingMove | None:
    """The move a ConfigMap records (None: none, or one that does not fit map ``m``)."""
    if not data or m is None:
        return None
    try:
        raw = json.loads(data)
        move = PendingMove(
            int(raw["shard"]),
            int(raw["source"]),
            int(raw["target"]),
            int(raw["epoch"]),
            int(raw.get("attempts", 0)),
            str(raw.get("error", "")),
            float(raw.get("retry_at", 0.0)),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    fits = 0 <= move.shard < len(m.owners) and max(move.source, move.target) < m.members
    return move if fits and move.source != move.target >= 0 else None


def plan_shard_map(
    g: GraphInputs,
    current: ShardMap | None,
    pods_before: int | None,
    move: PendingMove | None = None,
    keep: int | None = None,
) -> MapPlan:
    """The next map of ``g``: from ``current`` (the one written, with ``move`` under way),
    or, without one, for a new graph (``pods_before`` None) or one whose pods ran before maps
    (``pods_before`` of them, counting their volumes).

    ``current`` shrinks only when ``keep`` is given: the fewest pods the pods' own answers
    allow (every pod from ``keep`` on answered, owning nothing); None: they were not asked,
    and no pod goes."""
    shards = g.spec.shards
    wanted = g.spec.replicas
    if current is None:
        if pods_before is None:
            members = max(wanted, 1)
            # An autoscaled graph starts with its shards on the pods it never goes below;
            # the moves spread them as the autoscaler adds pods.
            a = g.spec.autoscaling
            spread = min(a.min_replicas, members) if g.spec.autoscaled and a else members
            return MapPlan(ShardMap(1, tuple(s % spread for s in range(shards)), members))
        if pods_before > 1:
            return MapPlan(None, (Reason.INDEPENDENT_STORES, INDEPENDENT_STORES))
        return MapPlan(ShardMap(1, (0,) * shards, max(wanted, 1)))
    if wanted == 0 or wanted == current.members:
        return MapPlan(current)
    # Pods owning shards, or about to, or not known to own none, stay until the moves have
    # emptied them.
    floor = max(current.floor, max(move.source, move.target) + 1 if move is not None else 0)
    floor = max(floor, current.members if keep is None else keep)
    members = max(wanted, floor) if wanted < current.members else wanted
    if members == current.members:
        return MapPlan(current)
    return MapPlan(replace(current, epoch=current.epoch + 1, members=members))


def member_address(g: GraphInputs, pod: int, port: int) -> str:
    """A pod's address by its headless name, as ``status.endpoints`` names the Service: the
    pods' resolver completes it with the cluster's domain, whichever that is."""
    return f"{g.name}-{pod}.{Names(g.name).headless_service}.{g.namespace}.svc:{port}"


def render_shard_map(g: GraphInputs) -> dict[str, Any] | None:
    """The ConfigMap holding ``g.shard_map`` (None: the graph has no map)."""
    m = g.shard_map
    if m is None:
        return None
    shard_map = {
        "graph": g.uid,
        "shards": len(m.owners),
        "epoch": m.epoch,
        "owners": list(m.owners),
        "members": [
            {"address": member_address(g, i, GRPC_PORT), "peer": member_address(g, i, PEER_PORT)}
            for i in range(m.members)
        ],
    }
    if m.shard_epochs:
        shard_map["shard_epochs"] = list(m.shard_epochs)
    data = {SHARD_MAP_KEY: json.dumps(shard_map, separators=(",", ":"))}
    if g.move is not None:
        data[MOVE_KEY] = json.dumps(asdict(g.move), separators=(",", ":"))
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(g, Names(g.name).shard_map, "shard-map"),
        "data": data,
    }
