"""Which worker owns which shard of a data directory served by several workers.

Such a directory holds the placement (`workers.json`: the number of shards, of workers, an
epoch and each shard's owner) and one engine per worker (`worker-<i>/`). The placement is made
when the directory is: shards spread evenly (shard s on worker s mod W), epoch 1. A directory
made for one worker is an engine itself and has no placement.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from memorygraph.errors import ConfigError
from memorygraph.store.shards import DEFAULT_SHARDS, Shards

__all__ = ["PLACEMENT_FILE", "Placement", "load_placement"]

PLACEMENT_FILE = "workers.json"
MAX_WORKERS = 64


@dataclass(frozen=True, slots=True)
class Placement:
    shards: int
    workers: int
    epoch: int
    owners: tuple[int, ...]

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


def load_placement(data_dir: Path, *, shards: int | None, workers: int) -> Placement:
    """The directory's placement, made for `workers` workers and `shards` shards (None: 64)
    when the directory is new; another number of workers or shards than it records is refused
    (moving shards between workers is not done by starting with another number)."""
    path = data_dir / PLACEMENT_FILE
    if path.exists():
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
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w") as file:
        file.write(placement.to_json())
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    directory = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return placement
