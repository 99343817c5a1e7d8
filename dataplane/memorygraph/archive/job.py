"""`memorygraph archive run|list|restore|delete|hold`: the archival job and its companions.

A run takes every session closed or idle since before the cutoff, oldest first, and for each:

    1. export       ExportSession(for_archive) — plugins may refuse (the session is skipped)
    2. upload       the compressed export and its manifest, under an id derived from the
                    export's checksum (a repeated upload finds its own archive in place)
    3. verify       the destination confirms (Data-Vault) or returns (S3) the same bytes
    4. delete       ArchiveSession(content_sha256): the server removes the session only while it
                    still exports to exactly what was verified

A kill at any point leaves the session in the graph (steps 1-3, and 4 until it commits) or
archived and gone (4 committed); a rerun finishes the work and never duplicates an archive.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, write_to_textfile

from memorygraph.archive.bundle import ArchiveError, Bundle, RetentionPolicy, decompress
from memorygraph.client import Client
from memorygraph.errors import FailedPrecondition, NotFound, RequestError
from memorygraph.v1 import graph_pb2 as pb

__all__ = ["Destination", "RunSummary", "restore_archive", "run_archival"]


class Destination(Protocol):
    name: str

    def check(self, policy: RetentionPolicy) -> None: ...
    def put_many(self, bundles: list[Bundle]) -> dict[str, bool | ArchiveError]: ...
    def verify(self, bundle: Bundle) -> None: ...
    def fetch(self, archive_id: str) -> tuple[dict[str, Any], bytes]: ...
    def delete(self, archive_id: str, *, bypass_governance_retention: bool = False) -> None: ...
    def set_legal_hold(self, archive_id: str, on: bool) -> None: ...
    def close(self) -> None: ...
    # Last: inside this class body the name `list` is the method.
    def list(self, session_id: str = "") -> Iterator[dict[str, Any]]: ...


@dataclass
class RunSummary:
    processed: int = 0
    archived: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0  # compressed bytes shipped
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"archive run: {self.processed} processed, {self.archived} archived, "
            f"{self.skipped} skipped, {self.failed} failed, {_size(self.bytes)} shipped, "
            f"{self.seconds:.1f} s"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "processed": self.processed,
            "archived": self.archived,
            "skipped": self.skipped,
            "failed": self.failed,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "failures": self.failures,
        }


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


Progress = Callable[[str], None]


@dataclass
class _Pending:
    """One session on its way: exported and bundled, not yet removed from the graph."""

    label: str
    session_id: str
    content_sha256: str
    bundle: Bundle


class _Run:
    def __init__(
        self,
        mg: Client,
        destination: Destination,
        policy: RetentionPolicy,
        source: str,
        progress: Progress,
    ) -> None:
        self.mg = mg
        self.destination = destination
        self.policy = policy
        self.source = source
        self.progress = progress
        self.summary = RunSummary()
        self.schema_version = 0  # the server's storage schema, recorded in manifests

    def say(self, label: str, session_id: str, text: str) -> None:
        self.progress(f"{label} session {session_id}: {text}")

    def fail(self, label: str, session_id: str, exc: Exception) -> None:
        self.summary.failed += 1
        self.summary.failures.append(f"{session_id}: {exc}")
        self.say(label, session_id, f"FAILED: {exc}")

    def export(self, label: str, candidate: pb.ArchiveCandidate) -> _Pending | None:
        """Step 1; None when the session is skipped."""
        session_id = candidate.session.id
        try:
            data, info = self.mg.export_session(session_id, for_archive=True)
        except NotFound:
            self.say(label, session_id, "gone already, skipped")
            self.summary.skipped += 1
            return None
        except FailedPrecondition as exc:  # a plugin refused, or the session is not ready
            self.say(label, session_id, f"skipped: {exc}")
            self.summary.skipped += 1
            return None
        bundle = Bundle.build(
            data,
            session_id=session_id,
            content_sha256=info.content_sha256,
            counts={"nodes": info.nodes, "edges": info.edges, "events": info.events},
            format_version=info.format_version,
            schema_version=self.schema_version,
            policy=self.policy,
            source=self.source,
        )
        self.say(
            label,
            session_id,
            f"exported {info.nodes + 1} nodes, {info.edges} edges, {info.events} events "
            f"({_size(len(data))})",
        )
        return _Pending(label, session_id, info.content_sha256, bundle)

    def finish(self, item: _Pending, new: bool) -> None:
        """Steps 3 and 4 for an uploaded archive."""
        label, session_id, bundle = item.label, item.session_id, item.bundle
        self.destination.verify(bundle)
        self.say(label, session_id, f"verified {bundle.archive_id}")
        self.say(label, session_id, "deleting from the graph")
        try:
            done = self.mg.archive_session(
                session_id, item.content_sha256, archive_id=bundle.archive_id
            )
        except FailedPrecondition as exc:
            # It changed (or has undelivered registry reports): it stays, and so that it is
            # not both kept and archived, the archive of the old state goes.
            self.say(label, session_id, f"kept in the graph: {exc}")
            if new:
                try:
                    self.destination.delete(bundle.archive_id)
                except ArchiveError as cleanup:
                    self.say(label, session_id, f"stale archive left in place: {cleanup}")
            self.summary.skipped += 1
            return
        self.summary.archived += 1
        self.summary.bytes += len(bundle.data)
        self.say(
            label,
            session_id,
            f"archived as {bundle.archive_id} ({done.deleted_nodes} nodes, "
            f"{done.deleted_edges} edges, {done.erased_events} events removed from the graph)",
        )

    def group(self, numbered: list[tuple[str, pb.ArchiveCandidate]]) -> None:
        """Export a group, upload it in one call, then verify and delete one by one."""
        pending: list[_Pending] = []
        for label, candidate in numbered:
            self.summary.processed += 1
            try:
                item = self.export(label, candidate)
            except (ArchiveError, RequestError) as exc:
                self.fail(label, candidate.session.id, exc)
                continue
            if item is not None:
                pending.append(item)
        if not pending:
            return
        try:
            stored = self.destination.put_many([p.bundle for p in pending])
        except ArchiveError as exc:
            for item in pending:
                self.fail(item.label, item.session_id, exc)
            return
        for item in pending:
            result = stored[item.bundle.archive_id]
            if isinstance(result, ArchiveError):
                self.fail(item.label, item.session_id, result)
                continue
            state = "uploaded" if result else "already uploaded"
            self.say(
                item.label,
                item.session_id,
                f"{state} {item.bundle.archive_id} ({_size(len(item.bundle.data))})",
            )
            try:
                self.finish(item, result)
            except (ArchiveError, RequestError) as exc:
                self.fail(item.label, item.session_id, exc)


def run_archival(
    mg: Client,
    destination: Destination,
    *,
    older_than: dt.timedelta,
    policy: RetentionPolicy,
    source: str,
    progress: Progress,
    limit: int = 0,
    batch_size: int = 16,
    now: dt.datetime | None = None,
) -> RunSummary:
    """Archive every session idle for longer than `older_than` (at most `limit`; 0: all),
    uploading `batch_size` sessions per destination call."""
    started = time.monotonic()
    run = _Run(mg, destination, policy, source, progress)
    run.schema_version = mg.health().schema_version
    destination.check(policy)
    cutoff = (now or dt.datetime.now(dt.UTC)) - older_than
    progress(
        f"archive run: sessions idle since before {cutoff.isoformat(timespec='seconds')} -> "
        f"{destination.name} ({policy.compliance}, {policy.days} days"
        f"{', legal hold' if policy.legal_hold else ''})"
    )
    # Candidates are taken a page at a time (a first run may face a large backlog); the
    # server's page tokens are positions, so removing earlier sessions does not disturb them.
    candidates = mg.iter_archive_candidates(cutoff, page_size=max(batch_size, 1) * 4)
    numbered = (
        (f"[{n}]", c) for n, c in enumerate(itertools.islice(candidates, limit or None), start=1)
    )
    while group := list(itertools.islice(numbered, max(batch_size, 1))):
        run.group(group)
    run.summary.seconds = time.monotonic() - started
    return run.summary


def restore_archive(
    mg: Client, destination: Destination, archive_id: str
) -> pb.RestoreSessionResponse:
    manifest, data = destination.fetch(archive_id)
    return mg.restore_session(decompress(data, manifest))


def write_metrics(path: Path, summary: RunSummary, *, success: bool) -> None:
    """The run's figures in Prometheus text format (for a node-exporter textfile collector or
    a sidecar that pushes them)."""
    registry = CollectorRegistry()
    sessions = Counter(
        "memorygraph_archive_job_sessions",
        "Sessions the last archive run handled, by result",
        ["result"],
        registry=registry,
    )
    for result in ("archived", "skipped", "failed"):
        sessions.labels(result).inc(getattr(summary, result))
    Counter("memorygraph_archive_job_bytes", "Compressed bytes shipped", registry=registry).inc(
        summary.bytes
    )
    Gauge(
        "memorygraph_archive_job_duration_seconds", "Length of the last run", registry=registry
    ).set(summary.seconds)
    if success:
        Gauge(
            "memorygraph_archive_job_last_success_timestamp_seconds",
            "When a run last finished without failures",
            registry=registry,
        ).set_to_current_time()
    write_to_textfile(str(path), registry)
