"""The `memorygraph archive` commands (wired into `memorygraph.cli`)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memorygraph.archive.bundle import COMPLIANCE_DAYS, RetentionPolicy
from memorygraph.archive.job import Destination, restore_archive, run_archival, write_metrics
from memorygraph.client import Client
from memorygraph.errors import ConfigError

__all__ = ["S3_CREDENTIAL_FILES", "add_archive_commands", "parse_duration", "secret_file"]

_DURATION = re.compile(r"(\d+)([dhms])")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> dt.timedelta:
    """'720h', '30d', '1h30m' -> timedelta (the operator's --older-than format, plus days)."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration like 720h, 30d or 1h30m (units d, h, m, s)"
        )
    return dt.timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))


def secret_file(text: str) -> str:
    """A secret read from a file (a mounted Secret's key), without its trailing newline."""
    try:
        value = Path(text).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {exc}") from None
    if not value:
        raise argparse.ArgumentTypeError(f"{text} is empty")
    return value


# The files of --s3-credentials-dir (a mounted Secret: one file per key) and whether each must
# be there.
S3_CREDENTIAL_FILES = {
    "AWS_ACCESS_KEY_ID": True,
    "AWS_SECRET_ACCESS_KEY": True,
    "AWS_REGION": False,
    "MEMORYGRAPH_S3_ENDPOINT": False,
}


def _s3_credentials(text: str) -> dict[str, str]:
    directory = Path(text)
    if not directory.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a directory")
    found = {}
    for name, required in S3_CREDENTIAL_FILES.items():
        if required or (directory / name).exists():
            found[name] = secret_file(str(directory / name))
    return found


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= {low}")
        return value

    return parse


def _destination(args: argparse.Namespace) -> Destination:
    if bool(args.vault_url) == bool(args.s3_bucket):
        raise ConfigError("give exactly one destination: --vault-url URL or --s3-bucket BUCKET")
    if args.vault_url:
        from memorygraph.archive.vault import VaultDestination

        return VaultDestination(args.vault_url, token=args.vault_token)
    from memorygraph.archive.s3 import S3Destination

    files = args.s3_credentials or {}
    return S3Destination(
        args.s3_bucket,
        args.s3_prefix,
        endpoint_url=args.s3_endpoint or files.get("MEMORYGRAPH_S3_ENDPOINT"),
        region=files.get("AWS_REGION"),
        access_key_id=files.get("AWS_ACCESS_KEY_ID"),
        secret_access_key=files.get("AWS_SECRET_ACCESS_KEY"),
    )


def _progress(line: str) -> None:
    print(line, flush=True)


def cmd_run(args: argparse.Namespace, mg: Client) -> int:
    policy = RetentionPolicy(args.compliance, args.retention_days, args.legal_hold)
    destination = _destination(args)
    try:
        summary = run_archival(
            mg,
            destination,
            older_than=args.older_than,
            policy=policy,
            source=args.server,
            progress=_progress,
            limit=args.limit,
            batch_size=args.batch_size,
        )
    finally:
        destination.close()
    print(summary.line(), flush=True)
    for failure in summary.failures:
        print(f"failed: {failure}", file=sys.stderr)
    if args.metrics_file:
        write_metrics(args.metrics_file, summary, success=summary.failed == 0)
    if args.summary_json:
        args.summary_json.write_text(json.dumps(summary.as_dict(), indent=2) + "\n")
    return 1 if summary.failed else 0


def cmd_list(args: argparse.Namespace, _: Client | None) -> int:
    destination = _destination(args)
    try:
        for manifest in destination.list(args.session or ""):
            row: dict[str, Any] = {
                k: manifest.get(k)
                for k in (
                    "archive_id",
                    "session_id",
                    "counts",
                    "bytes",
                    "compliance",
                    "retain_until",
                    "legal_hold",
                    "created_at",
                )
            }
            print(json.dumps(row, ensure_ascii=False), flush=True)
    finally:
        destination.close()
    return 0


def cmd_restore(args: argparse.Namespace, mg: Client) -> int:
    destination = _destination(args)
    try:
        result = restore_archive(mg, destination, args.archive_id)
    finally:
        destination.close()
    session = result.session.id
    if result.already_present:
        print(f"session {session} is back already, identical to archive {args.archive_id}")
        return 0
    print(
        f"restored session {session} from {args.archive_id}: {result.nodes} nodes, "
        f"{result.edges} edges, {result.events} events"
    )
    if result.skipped_edges or result.skipped_events:
        print(
            f"warning: {result.skipped_edges} edges to nodes that no longer exist and "
            f"{result.skipped_events} events older than the event log's retention were not "
            "restored",
            file=sys.stderr,
        )
    return 0


def cmd_delete(args: argparse.Namespace, _: Client | None) -> int:
    if args.bypass_governance_retention and args.vault_url:
        raise ConfigError("--bypass-governance-retention applies to S3 Object Lock only")
    destination = _destination(args)
    try:
        destination.delete(
            args.archive_id, bypass_governance_retention=args.bypass_governance_retention
        )
    finally:
        destination.close()
    print(f"deleted archive {args.archive_id} from {destination.name}")
    return 0


def cmd_hold(args: argparse.Namespace, _: Client | None) -> int:
    destination = _destination(args)
    on = args.state == "on"
    try:
        destination.set_legal_hold(args.archive_id, on)
    finally:
        destination.close()
    print(f"legal hold {'set on' if on else 'lifted from'} archive {args.archive_id}")
    return 0


def _destination_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("destination (exactly one)")
    where.add_argument(
        "--vault-url",
        help="Data-Vault base URL (token: --vault-token-file, else env MEMORYGRAPH_VAULT_TOKEN)",
    )
    where.add_argument(
        "--vault-token-file",
        dest="vault_token",
        type=secret_file,
        metavar="FILE",
        help="file holding the Data-Vault token",
    )
    where.add_argument(
        "--s3-bucket",
        help="S3 bucket (credentials: --s3-credentials-dir, else env AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY, AWS_REGION)",
    )
    where.add_argument(
        "--s3-credentials-dir",
        dest="s3_credentials",
        type=_s3_credentials,
        metavar="DIR",
        help="directory with the files "
        + ", ".join(S3_CREDENTIAL_FILES)
        + " (the last two optional), e.g. a mounted Secret",
    )
    where.add_argument("--s3-prefix", default="", help="key prefix inside the bucket")
    where.add_argument(
        "--s3-endpoint",
        help="S3-compatible endpoint URL, e.g. MinIO (env MEMORYGRAPH_S3_ENDPOINT)",
    )


def add_archive_commands(
    commands: Any, connection_options: Callable[[argparse.ArgumentParser], None]
) -> None:
    """`connection_options(parser)` adds the options that reach the server (--server, TLS) to
    the commands that talk to it: the CronJob passes them after the subcommand."""
    archive = commands.add_parser(
        "archive",
        help="move old sessions to a Data-Vault or S3, list, restore, delete archives",
        description="Archival: see docs/archival.md. Exit codes as for every command; "
        "`archive run` exits 1 when any session failed.",
    )
    actions = archive.add_subparsers(dest="action", required=True, metavar="ACTION")

    run = actions.add_parser(
        "run",
        help="archive sessions closed or idle for longer than --older-than",
        description="For each session closed or idle for longer than --older-than, oldest "
        "first: export it, upload it with its retention policy, verify it, then delete it "
        "from the graph. Safe to interrupt and rerun at any point.",
    )
    connection_options(run)
    run.add_argument(
        "--older-than",
        type=parse_duration,
        required=True,
        help="idle time before a session is archived, e.g. 720h or 30d",
    )
    run.add_argument(
        "--compliance",
        choices=list(COMPLIANCE_DAYS),
        default="Standard",
        help="retention class: "
        + ", ".join(f"{k} {v} days" for k, v in COMPLIANCE_DAYS.items())
        + " (default %(default)s)",
    )
    run.add_argument(
        "--retention-days", type=_at_least(1), help="override the compliance class's days"
    )
    run.add_argument("--legal-hold", action="store_true", help="put new archives on legal hold")
    run.add_argument(
        "--limit", type=_at_least(0), default=0, help="archive at most this many sessions"
    )
    run.add_argument(
        "--batch-size",
        type=_at_least(1),
        default=16,
        help="sessions uploaded per destination call (default %(default)s)",
    )
    run.add_argument("--metrics-file", type=Path, help="write the run's metrics (Prometheus text)")
    run.add_argument("--summary-json", type=Path, help="write the run's summary as JSON")
    _destination_options(run)
    run.set_defaults(func=cmd_run, remote=True)

    listing = actions.add_parser("list", help="archives at the destination, as JSON lines")
    listing.add_argument("--session", help="only this session's archives")
    _destination_options(listing)
    listing.set_defaults(func=cmd_list, remote=False)

    restore = actions.add_parser(
        "restore", help="bring an archived session back (same ids, edges, events)"
    )
    connection_options(restore)
    restore.add_argument("archive_id", metavar="ARCHIVE_ID")
    _destination_options(restore)
    restore.set_defaults(func=cmd_restore, remote=True)

    delete = actions.add_parser(
        "delete", help="remove an archive for good (right to erasure); refused under legal hold"
    )
    delete.add_argument("archive_id", metavar="ARCHIVE_ID")
    delete.add_argument(
        "--bypass-governance-retention",
        action="store_true",
        help="delete an S3 archive still under GOVERNANCE retention (needs the "
        "s3:BypassGovernanceRetention permission); refused without it",
    )
    _destination_options(delete)
    delete.set_defaults(func=cmd_delete, remote=False)

    hold = actions.add_parser("hold", help="set or lift the legal hold of an archive")
    hold.add_argument("archive_id", metavar="ARCHIVE_ID")
    hold.add_argument("state", choices=["on", "off"])
    _destination_options(hold)
    hold.set_defaults(func=cmd_hold, remote=False)
