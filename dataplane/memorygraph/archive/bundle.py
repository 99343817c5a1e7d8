"""An archive: a session export compressed with zstandard, and its manifest.

The archive id is derived from the session and the export's SHA-256, so archiving the same
session state twice names the same archive: an upload repeated after a crash finds its own
archive in place instead of making a second one.

Archives come back from storage the job does not control, so reading one trusts nothing in
it: an export is at most `MAX_EXPORT_BYTES`, and `decompress` streams the frame and stops at
the size the manifest states (a frame that declares another size is refused unread), so a few
kilobytes that declare gigabytes cost no more memory than an honest archive.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import zstandard

from memorygraph.errors import MemoryGraphError
from memorygraph.graph.export import EXPORT_FORMAT

__all__ = [
    "COMPLIANCE_DAYS",
    "MAX_ARCHIVE_BYTES",
    "MAX_EXPORT_BYTES",
    "ArchiveError",
    "Bundle",
    "RetentionPolicy",
    "archive_id_for",
    "decompress",
]

# Days an archive is kept at least, by compliance level (`--retention-days` overrides).
COMPLIANCE_DAYS = {"Standard": 365, "PCI": 1095, "HIPAA": 2555, "GDPR": 2555, "SOC2": 2555}
ZSTD_LEVEL = 9
# The largest export a restore reads back; archival refuses to make a larger one.
MAX_EXPORT_BYTES = 1 << 30
# The largest archive (compressed bytes) read from a destination: the most zstandard makes
# of a MAX_EXPORT_BYTES export (its compressBound), and a little more.
MAX_ARCHIVE_BYTES = MAX_EXPORT_BYTES + (MAX_EXPORT_BYTES >> 8) + (1 << 20)
# Decompressed bytes produced per step of a restore.
_CHUNK = 1 << 20


class ArchiveError(MemoryGraphError):
    """An archive could not be written, read, verified or removed at its destination."""


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    compliance: str = "Standard"
    retention_days: int | None = None  # None: the compliance level's default
    legal_hold: bool = False

    def __post_init__(self) -> None:
        if self.compliance not in COMPLIANCE_DAYS:
            raise ArchiveError(
                f"unknown compliance level {self.compliance!r} "
                f"(one of {', '.join(COMPLIANCE_DAYS)})"
            )
        if self.retention_days is not None and self.retention_days < 1:
            raise ArchiveError("retention days must be at least 1")

    @property
    def days(self) -> int:
        return self.retention_days or COMPLIANCE_DAYS[self.compliance]

    def retain_until(self, now: dt.datetime) -> dt.datetime:
        return now + dt.timedelta(days=self.days)


def archive_id_for(session_id: str, content_sha256: str) -> str:
    return f"{session_id}-{content_sha256[:16]}"


def _rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Bundle:
    """One archive ready to ship: compressed bytes plus the manifest describing them."""

    archive_id: str
    session_id: str
    data: bytes  # zstandard frame of the export
    manifest: dict[str, Any]

    @classmethod
    def build(
        cls,
        export: bytes,
        *,
        session_id: str,
        content_sha256: str,
        counts: dict[str, int],
        format_version: int,
        schema_version: int,
        policy: RetentionPolicy,
        source: str,
        now: dt.datetime | None = None,
    ) -> Bundle:
        if hashlib.sha256(export).hexdigest() != content_sha256:
            raise ArchiveError(
                f"session {session_id}: the export does not match the checksum the server "
                "sent with it (damaged in transit)"
            )
        if len(export) > MAX_EXPORT_BYTES:
            # `decompress` refuses it: such an archive could never be restored.
            raise ArchiveError(
                f"session {session_id}: its export is {len(export)} bytes, more than the "
                f"{MAX_EXPORT_BYTES} a restore reads back; it could not be restored, so it "
                "stays in the graph"
            )
        now = now or dt.datetime.now(dt.UTC)
        data = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).compress(export)
        archive_id = archive_id_for(session_id, content_sha256)
        manifest = {
            "archive_id": archive_id,
            "session_id": session_id,
            "format": EXPORT_FORMAT,
            "format_version": format_version,
            "schema_version": schema_version,
            "counts": counts,
            "content_sha256": content_sha256,
            "content_bytes": len(export),
            "compression": "zstd",
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "compliance": policy.compliance,
            "retention_days": policy.days,
            "retain_until": _rfc3339(policy.retain_until(now)),
            "legal_hold": policy.legal_hold,
            "created_at": _rfc3339(now),
            "source": source,
        }
        return cls(archive_id, session_id, data, manifest)

    @property
    def sha256(self) -> str:
        return str(self.manifest["sha256"])


def _export_size(data: bytes, manifest: dict[str, Any]) -> int:
    """The export's size as the manifest states it, checked against the limit and against
    what the zstandard frame declares (before anything is decompressed)."""
    archive_id = manifest.get("archive_id")
    size = manifest.get("content_bytes")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ArchiveError(f"archive {archive_id}: its manifest states no export size")
    limit = MAX_EXPORT_BYTES
    if size > limit:
        raise ArchiveError(
            f"archive {archive_id}: its export is {size} bytes, more than the {limit} a "
            "restore reads"
        )
    try:
        declared = zstandard.get_frame_parameters(data).content_size
    except zstandard.ZstdError as exc:
        raise ArchiveError(f"archive {archive_id}: not readable: {exc}") from None
    if declared != zstandard.CONTENTSIZE_UNKNOWN and declared != size:
        raise ArchiveError(
            f"archive {archive_id}: its frame declares {declared} bytes, its manifest {size}"
        )
    return size


def decompress(data: bytes, manifest: dict[str, Any]) -> bytes:
    """The export inside an archive, checked against both checksums of its manifest.

    The frame is decompressed a chunk at a time and refused as soon as it gives more than
    the manifest's `content_bytes` (itself at most `MAX_EXPORT_BYTES`)."""
    archive_id = manifest.get("archive_id")
    if hashlib.sha256(data).hexdigest() != manifest.get("sha256"):
        raise ArchiveError(
            f"archive {archive_id}: the stored bytes do not match the manifest's checksum "
            "(damaged or altered)"
        )
    size = _export_size(data, manifest)
    chunks: list[bytes] = []
    produced = 0
    reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
    try:
        while chunk := reader.read(min(_CHUNK, size - produced + 1)):
            produced += len(chunk)
            if produced > size:
                raise ArchiveError(
                    f"archive {archive_id}: decompresses to more than the {size} bytes its "
                    "manifest states"
                )
            chunks.append(chunk)
    except zstandard.ZstdError as exc:
        raise ArchiveError(f"archive {archive_id}: not readable: {exc}") from None
    finally:
        reader.close()
    export = b"".join(chunks)
    del chunks
    if hashlib.sha256(export).hexdigest() != manifest.get("content_sha256"):
        raise ArchiveError(
            f"archive {archive_id}: the export does not match the manifest's content checksum"
        )
    return export
