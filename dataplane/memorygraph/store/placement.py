"""Which worker owns which shard of a data directory served by several workers.

Such a directory holds the placement (`workers.json`: the number of shards, of workers, an
epoch and each shard's owner) and one engine per worker (`worker-<i>/`). The placement is made
when the directory is: shards spread evenly (shard s on worker s mod W), epoch 1. A directory
made for one worker is an engine itself and has no placement.

`move_offline` moves a shard to another worker while the data plane is stopped: it records the
move (`move.json`), copies the shard and counts it in at the target (`moves`), writes the
placement with the new owner at the next epoch (the move's point of no return), counts the
shard out of the source and drops it there, and removes the record. Killed at any point and run
again, it finishes the move it recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from memorygraph.errors import ConfigError
from memorygraph.store import keys
from memorygraph.store.kv import KeyValueStore
from memorygraph.store.moves import adopt_shard, release_shard, sync_shard, unreported
from memorygraph.store.shards import DEFAULT_SHARDS, Shards
from memorygraph.store.split import OUTBOX_PREFIX

__all__ = [
    "PLACEMENT_FILE",
    "Move",
    "Placement",
    "create_move",
    "load_placement",
    "move_offline",
    "read_move",
    "read_placement",
    "remove_move",
    "write_placement",
]

PLACEMENT_FILE = "workers.json"
MOVE_FILE = "move.json"  # a move made with the data plane stopped (it refuses to start)
ONLINE_MOVE_FILE = "moving.json"  # a move made while it serves (its workers finish it)
MAX_WORKERS = 64


@dataclass(frozen=True, slots=True)
class Placement:
    shards: int
    workers: int
    epoch: int
    owners: tuple[int, ...]
    # Pod members: each shard's own epoch (its moves); () where one epoch covers every shard.
    shard_epochs: tuple[int, ...] = ()

    def shard_epoch(self, shard: int) -> int:
        """The epoch a hand-over of `shard` to its owner is counted under."""
        return self.shard_epochs[shard] if self.shard_epochs else self.epoch

    @classmethod
    def even(cls, shards: int, workers: int) -> Placement:
        return cls(shards, workers, 1, tuple(s % workers for s in range(shards)))

    def engine_dir(self, data_dir: Path, worker: int) -> Path:
        return data_dir / f"worker-{worker}"

    def to_json(self) -> str:
        return json.dumps(
            {
                "shards": self.shards,
                "workers": self.workers,
                "epoch": self.epoch,
                "owners": list(self.owners),
            }
        )


def _read(path: Path) -> Placement:
    try:
        raw = json.loads(path.read_text())
        placement = Placement(
            int(raw["shards"]), int(raw["workers"]), int(raw["epoch"]), tuple(raw["owners"])
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read the placement of shards in {path}: {exc}") from None
    Shards(placement.shards)  # a valid count
    if len(placement.owners) != placement.shards or not all(
        isinstance(o, int) and 0 <= o < placement.workers for o in placement.owners
    ):
        raise ConfigError(f"the placement of shards in {path} is not one: it names {placement}")
    return placement


def directory_workers(data_dir: Path) -> int | None:
    """How many workers serve `data_dir`: its placement's number, 1 for the store of a single
    process, None for a new directory."""
    path = data_dir / PLACEMENT_FILE
    if path.exists():
        return _read(path).workers
    return 1 if (data_dir / "CURRENT").exists() else None


def load_placement(data_dir: Path, *, shards: int | None, workers: int) -> Placement:
    """The directory's placement, made for `workers` workers and `shards` shards (None: 64)
    when the directory is new; another number of workers or shards than it records is refused
    (moving shards between workers is not done by starting with another number)."""
    path = data_dir / PLACEMENT_FILE
    if path.exists():
        if (move := _read_move(data_dir / MOVE_FILE)) is not None:
            raise ConfigError(
                f"the move of shard {move.shard} to worker {move.target} in {data_dir} was cut "
                f"short: finish it first (memorygraph shards move {move.shard} --to "
                f"{move.target} --data-dir {data_dir})"
            )
        placement = _read(path)
        if placement.workers != workers:
            raise ConfigError(
                f"data directory {data_dir} is served by {placement.workers} workers and cannot "
                f"be started with {workers} (start with --workers {placement.workers})"
            )
        if shards is not None and shards != placement.shards:
            raise ConfigError(
                f"data directory {data_dir} has {placement.shards} shards and cannot be opened "
                f"with {shards} (start with --shards {placement.shards}, or leave the option out)"
            )
        return placement
    if (data_dir / "CURRENT").exists():
        raise ConfigError(
            f"data directory {data_dir} holds the store of a single process and cannot be "
            f"started with {workers} workers: its shards would have to move to the workers' "
            "stores (start it with --workers 1)"
        )
    placement = Placement.even(Shards(shards or DEFAULT_SHARDS).count, workers)
    data_dir.mkdir(parents=True, exist_ok=True)
    _write_file(path, placement.to_json())
    return placement


def _write_file(path: Path, text: str) -> None:
    """`path` holds `text` on stable storage, replaced at once (never half written)."""
    temporary = _synced(path.with_suffix(".tmp"), text)
    os.replace(temporary, path)
    _sync_dir(path.parent)


def _synced(path: Path, text: str) -> Path:
    """`path`, written with `text` and synced."""
    with open(path, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    return path


def _sync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclass(frozen=True, slots=True)
class Move:
    """A move recorded in `move.json` until it is done."""

    shard: int
    source: int
    target: int
    epoch: int  # the placement's epoch once the target owns the shard


def _read_move(path: Path) -> Move | None:
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        return Move(int(raw["shard"]), int(raw["source"]), int(raw["target"]), int(raw["epoch"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read the move recorded in {path}: {exc}") from None


def read_placement(data_dir: Path) -> Placement:
    """The placement of a data directory of workers."""
    return _read(data_dir / PLACEMENT_FILE)


def write_placement(data_dir: Path, placement: Placement) -> None:
    _write_file(data_dir / PLACEMENT_FILE, placement.to_json())


def read_move(data_dir: Path) -> Move | None:
    """The move made while the data plane serves that is under way or was cut short."""
    return _read_move(data_dir / ONLINE_MOVE_FILE)


def create_move(data_dir: Path, move: Move) -> bool:
    """Record `move` unless a move is recorded already (False then): one at a time, however
    many workers ask at once."""
    path = data_dir / ONLINE_MOVE_FILE
    unique = f".{os.getpid()}.{threading.get_ident()}.tmp"
    temporary = _synced(path.with_suffix(unique), json.dumps(asdict(move)))
    try:
        os.link(temporary, path)  # fails when the file exists: an atomic "create if absent"
    except FileExistsError:
        return False
    finally:
        temporary.unlink()
    _sync_dir(data_dir)
    return True


def remove_move(data_dir: Path) -> None:
    (data_dir / ONLINE_MOVE_FILE).unlink(missing_ok=True)
    _sync_dir(data_dir)


def move_offline(
    data_dir: Path,
    shard: int,
    target: int,
    open_engine: Callable[[Path], KeyValueStore],
    say: Callable[[str], None] = lambda line: None,
) -> Placement:
    """Move `shard` to worker `target` in the stopped data plane of `data_dir` (each worker's
    engine opened with `open_engine`, which fails while the data plane runs); `say` is told
    each step. Returns the placement after the move."""
    path = data_dir / PLACEMENT_FILE
    if not path.exists():
        raise ConfigError(f"{data_dir} is not the data directory of several workers")
    placement = _read(path)
    if not 0 <= shard < placement.shards:
        raise ConfigError(f"there is no shard {shard}: the directory has {placement.shards}")
    if not 0 <= target < placement.workers:
        raise ConfigError(f"there is no worker {target}: the directory has {placement.workers}")
    if (online := read_move(data_dir)) is not None:
        raise ConfigError(
            f"the move of shard {online.shard} to worker {online.target} made while the data "
            "plane served is unfinished: start the data plane and move that shard again"
        )
    journal = data_dir / MOVE_FILE
    move = _read_move(journal)
    if move is not None and (move.shard, move.target) != (shard, target):
        raise ConfigError(
            f"the move of shard {move.shard} to worker {move.target} was cut short: run it "
            "again before another"
        )
    if move is None:
        if placement.owners[shard] == target:
            say(f"shard {shard} is on worker {target} already")
            return placement
        move = Move(shard, placement.owners[shard], target, placement.epoch + 1)
        _write_file(journal, json.dumps(asdict(move)))
    shards = Shards(placement.shards)
    with _engines(placement, data_dir, open_engine) as engines:
        pending = [
            worker
            for worker, engine in enumerate(engines)
            if any(
                True
                for _ in engine.scan_keys(
                    keys.CF_META, OUTBOX_PREFIX, keys.prefix_end(OUTBOX_PREFIX)
                )
            )
        ]
        if pending and placement.owners[shard] == move.source:
            raise ConfigError(
                f"worker {pending[0]} has parts of writes still to deliver to other workers: "
                "start the data plane until it has delivered them, stop it, and move again"
            )
        source, destination = engines[move.source], engines[move.target]
        if placement.owners[shard] == move.source and unreported(source, shard):
            raise ConfigError(
                f"worker {move.source} has not reported all of shard {shard}'s token usage to "
                "the LLM-Registry yet: start the data plane until it has (the registry outbox "
                "depth is 0), stop it, and move again"
            )
        if placement.owners[shard] == move.source:
            say(f"copying shard {shard} from worker {move.source} to worker {move.target}")
            copied = sync_shard(source, destination, shard, shards)
            say(f"copied {copied} keys; counting them in at worker {move.target}")
            adopt_shard(destination, shard, shards, move.epoch)
            owners = list(placement.owners)
            owners[shard] = move.target
            placement = replace(placement, owners=tuple(owners), epoch=move.epoch)
            _write_file(path, placement.to_json())
            say(f"shard {shard} is on worker {move.target} at epoch {move.epoch}")
        say(f"dropping shard {shard} from worker {move.source}")
        release_shard(source, shard, shards, move.epoch)
    journal.unlink()
    _sync_dir(data_dir)
    say(f"moved shard {shard} to worker {move.target}")
    return placement


@contextlib.contextmanager
def _engines(
    placement: Placement, data_dir: Path, open_engine: Callable[[Path], KeyValueStore]
) -> Iterator[list[KeyValueStore]]:
    opened: list[KeyValueStore] = []
    try:
        for worker in range(placement.workers):
            opened.append(open_engine(placement.engine_dir(data_dir, worker)))
        yield opened
    finally:
        for engine in opened:
            engine.close()
