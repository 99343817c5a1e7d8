"""The shard map of a graph served by several pods, each with a volume of its own.

The operator writes the map (a JSON file mounted into every pod): the graph's UID, its number
of shards, an epoch, each shard's owner and every member's addresses, member i being pod i of
the graph's StatefulSet:

    {"graph": "0b6e…", "shards": 64, "epoch": 1, "owners": [0, 1, 0, 1, …],
     "members": [{"address": "mg-0.mg-headless.ns.svc:50051",
                  "peer": "mg-0.mg-headless.ns.svc:50052"}, …]}

`address` is where clients reach the member, `peer` where the other members do. A pod serves
only what a map it can confirm gives it: the map must name its member index, and the store
remembers the graph and member it serves and the highest epoch it was given (`claim`), so that
a volume is never served as another graph's or another member's, and a map is never taken
back to an earlier epoch.

Shards move between members while they serve (`servicers.moving.PodMover`): the members hand a
shard over among themselves, under the fence of every member's writers' lock, and each records
the hand-over in its volume (`record_shard`): shard s is member m's from shard epoch k on (each
shard counts its own moves). The map follows afterwards: the operator writes the new owner
with the shard's epoch (`shard_epochs`, optional, 0 for a shard that never moved). What a
member serves is its view (`ShardView`): for each shard, whichever of the map and its records
has the higher epoch. A map never moves a shard by itself: a member refuses a map that gives
one of its own shards away, or gives it one, at an epoch it did not record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from memorygraph.errors import ConfigError, InvalidArgument
from memorygraph.store import keys
from memorygraph.store.kv import KeyValueStore
from memorygraph.store.placement import MAX_WORKERS
from memorygraph.store.shards import check_shard_count

__all__ = [
    "ClusterMap",
    "Intent",
    "Member",
    "ShardView",
    "claim",
    "read_cluster_map",
    "read_intent",
    "record_shard",
    "recorded_shards",
    "refuse_member_volume",
    "write_intent",
]

GRAPH_KEY = b"cluster/graph"
MEMBER_KEY = b"cluster/member"
EPOCH_KEY = b"cluster/epoch"
SHARD_PREFIX = b"cluster/shard/"  # + shard (2 bytes) -> owner (2 bytes) + shard epoch (8)
INTENT_KEY = b"cluster/move"  # the move to this member under way: shard, source, shard epoch
MAX_MAP_BYTES = 1 << 20  # 4,096 shards and 64 members take well under 100 KiB


@dataclass(frozen=True, slots=True)
class Member:
    address: str  # host:port of its client port
    peer: str  # host:port of its peer port


@dataclass(frozen=True, slots=True)
class ClusterMap:
    graph: str
    shards: int
    epoch: int
    owners: tuple[int, ...]
    members: tuple[Member, ...]
    shard_epochs: tuple[int, ...] = ()  # per shard, the epoch of its last move (() all 0)

    def shard_epoch(self, shard: int) -> int:
        return self.shard_epochs[shard] if self.shard_epochs else 0


@dataclass(frozen=True, slots=True)
class ShardView:
    """Which member owns each shard, and since which shard epoch: a map's, with the hand-overs
    a member recorded since (see the module)."""

    owners: tuple[int, ...]
    epochs: tuple[int, ...]

    @classmethod
    def of(cls, shard_map: ClusterMap, recorded: dict[int, tuple[int, int]]) -> ShardView:
        """`shard_map`'s owners, where `recorded` (shard -> (owner, epoch)) has no newer one.
        ConfigError when both name one epoch of a shard with different owners."""
        owners, epochs = list(shard_map.owners), [0] * shard_map.shards
        for shard in range(shard_map.shards):
            epochs[shard] = shard_map.shard_epoch(shard)
            owner, epoch = recorded.get(shard, (owners[shard], -1))
            if epoch == epochs[shard] and owner != owners[shard]:
                raise ConfigError(
                    f"the shard map gives shard {shard} to member {owners[shard]} at its epoch "
                    f"{epoch}, which this member recorded as member {owner}'s"
                )
            if epoch > epochs[shard]:
                owners[shard], epochs[shard] = owner, epoch
        return cls(tuple(owners), tuple(epochs))

    def version(self, map_epoch: int) -> int:
        """One number that grows with the map's epoch and with every hand-over (what the
        routes and the clients compare)."""
        return map_epoch + sum(self.epochs)

    def changes(self, newer: ShardView) -> list[int]:
        """The shards whose owner `newer` changes."""
        return [s for s, (a, b) in enumerate(zip(self.owners, newer.owners, strict=True)) if a != b]


def _host_port(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where} must be host:port")
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{where} must be host:port, not {value!r}")
    return value


def _member(raw: object, index: int) -> Member:
    if not isinstance(raw, dict) or set(raw) != {"address", "peer"}:
        raise ValueError(f"members[{index}] must have exactly address and peer")
    return Member(
        _host_port(raw["address"], f"members[{index}].address"),
        _host_port(raw["peer"], f"members[{index}].peer"),
    )


def _parse(raw: object) -> ClusterMap:
    if not isinstance(raw, dict):
        raise ValueError("it must be a JSON object")
    missing = {"graph", "shards", "epoch", "owners", "members"} - set(raw)
    if missing:
        raise ValueError(f"it has no {', '.join(sorted(missing))}")
    graph, shards, epoch, owners, members = (
        raw[k] for k in ("graph", "shards", "epoch", "owners", "members")
    )
    if not isinstance(graph, str) or not graph:
        raise ValueError("graph must be the graph's UID")
    if type(shards) is not int or type(epoch) is not int or epoch < 1:
        raise ValueError("shards and epoch must be whole numbers, the epoch 1 or more")
    try:
        check_shard_count(shards)
    except InvalidArgument as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(members, list) or not 1 <= len(members) <= MAX_WORKERS:
        raise ValueError(f"members must list 1 to {MAX_WORKERS} members")
    parsed = tuple(_member(m, i) for i, m in enumerate(members))
    if not isinstance(owners, list) or len(owners) != shards:
        raise ValueError(f"owners must name the owner of each of the {shards} shards")
    if not all(type(o) is int and 0 <= o < len(parsed) for o in owners):
        raise ValueError(f"every owner must be a member index below {len(parsed)}")
    epochs = raw.get("shard_epochs", [])
    if not isinstance(epochs, list) or len(epochs) not in (0, shards):
        raise ValueError(f"shard_epochs must list the epoch of each of the {shards} shards")
    if not all(type(e) is int and e >= 0 for e in epochs):
        raise ValueError("every shard epoch must be a whole number, 0 or more")
    return ClusterMap(graph, shards, epoch, tuple(owners), parsed, tuple(epochs))


def read_cluster_map(path: Path) -> ClusterMap:
    """The map in `path`; ConfigError saying what is wrong with it otherwise."""
    try:
        with path.open("rb") as file:
            text = file.read(MAX_MAP_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the shard map {path}: {exc.strerror}") from None
    try:
        if len(text) > MAX_MAP_BYTES:
            raise ValueError(f"it is larger than {MAX_MAP_BYTES} bytes")
        return _parse(json.loads(text))
    except ValueError as exc:  # json's errors are ValueErrors too
        raise ConfigError(f"the shard map {path} is not one: {exc}") from None


def claim(kv: KeyValueStore, shard_map: ClusterMap, member: int) -> None:
    """Serve `kv` as member `member` of `shard_map`'s graph at its epoch: recorded in a new
    store; refused (ConfigError) for a store of another graph or member, of another number of
    shards, served before maps (so holding every shard) while the map gives shards to other
    members, or given a newer map before."""
    if not 0 <= member < len(shard_map.members):
        raise ConfigError(
            f"the shard map names {len(shard_map.members)} members and not this one "
            f"({member}); waiting for the operator to add it"
        )
    graph = kv.get(keys.CF_META, GRAPH_KEY)
    if graph is not None and graph.decode() != shard_map.graph:
        raise ConfigError(
            f"this volume holds graph {graph.decode()}, not {shard_map.graph}: refusing to "
            "serve it as another graph's"
        )
    recorded = kv.get(keys.CF_META, keys.SHARDS_KEY)
    if recorded is not None and int(recorded) != shard_map.shards:
        raise ConfigError(
            f"this volume holds {int(recorded)} shards and the shard map {shard_map.shards}"
        )
    if graph is None and recorded is not None:  # served before maps: it holds every shard
        others = sorted({owner for owner in shard_map.owners if owner != member})
        if others:
            raise ConfigError(
                "this volume holds a graph served by one process before shard maps, every "
                f"shard of it; the map gives shards to members {others}, where its data is not"
            )
    mine = kv.get(keys.CF_META, MEMBER_KEY)
    if mine is not None and int(mine) != member:
        raise ConfigError(
            f"this volume is member {int(mine)}'s of the graph, not member {member}'s"
        )
    seen = kv.get(keys.CF_META, EPOCH_KEY)
    if seen is not None and int.from_bytes(seen) > shard_map.epoch:
        raise ConfigError(
            f"the shard map's epoch {shard_map.epoch} is older than epoch "
            f"{int.from_bytes(seen)}, which this member served already; waiting for a newer map"
        )
    kv.write(
        [
            (keys.CF_META, GRAPH_KEY, shard_map.graph.encode()),
            (keys.CF_META, MEMBER_KEY, str(member).encode()),
            (keys.CF_META, EPOCH_KEY, shard_map.epoch.to_bytes(8)),
        ],
        sync=True,
    )


def refuse_member_volume(kv: KeyValueStore) -> None:
    """Refuse (ConfigError) to serve a member's volume as a whole graph: it holds only the
    shards its map gave it."""
    graph = kv.get(keys.CF_META, GRAPH_KEY)
    if graph is not None:
        member = int(kv.get(keys.CF_META, MEMBER_KEY) or b"0")
        raise ConfigError(
            f"this volume is member {member}'s of graph {graph.decode()}, which holds only "
            "its shards: start it with the graph's cluster settings"
        )


def _shard_key(shard: int) -> bytes:
    return SHARD_PREFIX + shard.to_bytes(2)


def recorded_shards(kv: KeyValueStore) -> dict[int, tuple[int, int]]:
    """The hand-overs this member's volume recorded: shard -> (owner, shard epoch)."""
    found = {}
    for key, value in kv.scan(keys.CF_META, SHARD_PREFIX, keys.prefix_end(SHARD_PREFIX)):
        found[int.from_bytes(key[len(SHARD_PREFIX) :])] = (
            int.from_bytes(value[:2]),
            int.from_bytes(value[2:]),
        )
    return found


def record_shard(kv: KeyValueStore, shard: int, owner: int, epoch: int) -> None:
    """Record in the volume, synced, that `shard` is member `owner`'s from `epoch` on."""
    kv.write([(keys.CF_META, _shard_key(shard), owner.to_bytes(2) + epoch.to_bytes(8))], sync=True)


@dataclass(frozen=True, slots=True)
class Intent:
    """A move to this member under way (recorded until it is done or given up)."""

    shard: int
    source: int
    epoch: int  # the shard's epoch once this member owns it


def read_intent(kv: KeyValueStore) -> Intent | None:
    raw = kv.get(keys.CF_META, INTENT_KEY)
    if raw is None:
        return None
    found = json.loads(raw)
    return Intent(int(found["shard"]), int(found["source"]), int(found["epoch"]))


def write_intent(kv: KeyValueStore, intent: Intent | None) -> None:
    """Record `intent` (None: remove the one recorded), synced."""
    value = None
    if intent is not None:
        value = json.dumps(
            {"shard": intent.shard, "source": intent.source, "epoch": intent.epoch}
        ).encode()
    kv.write([(keys.CF_META, INTENT_KEY, value)], sync=True)
