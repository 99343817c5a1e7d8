"""`memorygraph shards move`: move a shard to another worker, while the data plane serves
(through --server) or while it is stopped (--data-dir)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from memorygraph.cli.options import Commands
from memorygraph.cli.output import print_json
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


def cmd_shards_move(args: argparse.Namespace, mg: Any) -> int:
    if args.data_dir is None:
        return _move_online(args, mg)
    placement = move_offline(args.data_dir, args.shard, args.to, _open_engine, say=print)
    owned = sum(1 for owner in placement.owners if owner == args.to)
    print(f"worker {args.to} owns {owned} of {placement.shards} shards (epoch {placement.epoch})")
    return 0


def _move_online(args: argparse.Namespace, mg: Any) -> int:
    print_json(mg.move_shard(args.shard, args.to))
    return 0


def add_commands(commands: Commands) -> None:
    shards = commands.add_parser("shards", help="the shards of a data directory of workers")
    actions = shards.add_subparsers(dest="action", required=True, metavar="ACTION")
    move = actions.add_parser(
        "move",
        help="move a shard to another worker",
        description="Move SHARD to worker --to of a data plane of several workers (serve "
        "--workers). Without --data-dir, through the server at --server while it serves: "
        "the worker copies the shard, catches up, pauses the graph's writes briefly to hand "
        "it over at the next epoch, and prints what it did. With --data-dir, in a stopped "
        "data plane's directory: copy it, count it in at the worker, record the new owner "
        "at the next epoch, drop the old copy. Either way, cut short, run it again: it "
        "finishes the move (a stopped data plane refuses to start until it has).",
    )
    move.add_argument("shard", type=int, help="the shard's number")
    move.add_argument("--to", type=int, required=True, help="the worker to move it to")
    move.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="move in this stopped data plane's directory instead of through --server",
    )
    move.set_defaults(func=cmd_shards_move, remote=True)  # the channel opens on the first call
