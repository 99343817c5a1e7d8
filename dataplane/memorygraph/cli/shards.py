"""`memorygraph shards move`: move a shard to another worker while the data plane is stopped."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from memorygraph.cli.options import Commands
from memorygraph.errors import ConfigError
from memorygraph.store import KeyValueStore, open_rocks_store
from memorygraph.store.placement import move_offline

__all__ = ["add_commands", "cmd_shards_move"]


def _open_engine(path: Path) -> KeyValueStore:
    if not path.is_dir():
        raise ConfigError(f"{path} holds no store: is this the data directory of the workers?")
    try:
        return open_rocks_store(str(path))
    except Exception as exc:  # rocksdict raises plain exceptions carrying RocksDB's status text
        if "lock" in str(exc).lower():
            raise ConfigError(
                f"{path} is in use: stop the data plane before moving shards"
            ) from None
        raise ConfigError(f"cannot open the store in {path}: {exc}") from None


def cmd_shards_move(args: argparse.Namespace, _: Any) -> int:
    placement = move_offline(args.data_dir, args.shard, args.to, _open_engine, say=print)
    owned = sum(1 for owner in placement.owners if owner == args.to)
    print(f"worker {args.to} owns {owned} of {placement.shards} shards (epoch {placement.epoch})")
    return 0


def add_commands(commands: Commands) -> None:
    shards = commands.add_parser("shards", help="the shards of a data directory of workers")
    actions = shards.add_subparsers(dest="action", required=True, metavar="ACTION")
    move = actions.add_parser(
        "move",
        help="move a shard to another worker (the data plane stopped)",
        description="Move SHARD to worker --to in a data directory served by several workers "
        "(serve --workers), while the data plane is stopped: copy it, count it in at the "
        "worker, record the new owner at the next epoch, drop the old copy. Killed at any "
        "point, run it again: it finishes the move; the data plane refuses to start until "
        "it has.",
    )
    move.add_argument("shard", type=int, help="the shard's number")
    move.add_argument("--to", type=int, required=True, help="the worker to move it to")
    move.add_argument(
        "--data-dir", type=Path, default=Path("data"), help="the data directory (default ./data)"
    )
    move.set_defaults(func=cmd_shards_move, remote=False)
