"""Reading an archive back trusts nothing in it: zstandard frames that declare gigabytes or say
nothing, and manifests that lie. Each is refused with a message saying why, before the memory
is spent."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tracemalloc
from typing import Any

import pytest
import zstandard
from memorygraph.archive import bundle
from memorygraph.archive.bundle import ArchiveError, Bundle, decompress
from memorygraph.server import RunningServer

from .archive_support import TOKEN, _vault_destination
from .conftest import REPO
from .vault_server import DataVault

MiB = 1 << 20


def _zeros_frame(size: int, *, declare: bool) -> bytes:
    """A zstandard frame of `size` zero bytes (a few kilobytes per hundred megabytes),
    declaring its size in its header or not."""
    out = io.BytesIO()
    compressor = zstandard.ZstdCompressor(level=1, write_content_size=declare)
    chunk = bytes(16 * MiB)
    with compressor.stream_writer(out, size=size if declare else -1, closefd=False) as writer:
        for _ in range(size // len(chunk)):
            writer.write(chunk)
    return out.getvalue()


def _manifest(data: bytes, content_bytes: int, content_sha256: str = "0" * 64) -> dict[str, Any]:
    """A manifest that matches `data` (its checksum is right) and says what the test says."""
    return {
        "archive_id": "s-1-bomb",
        "session_id": "s-1",
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "content_bytes": content_bytes,
        "content_sha256": content_sha256,
        "compliance": "Standard",
        "retention_days": 365,
        "retain_until": "2031-01-01T00:00:00Z",
        "legal_hold": False,
    }


def _decompress_measured(data: bytes, manifest: dict[str, Any]) -> tuple[ArchiveError, int]:
    """The error `decompress` refuses with, and the most memory it held meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(ArchiveError) as info:
            decompress(data, manifest)
        return info.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    """A restore limit of 1 MiB, so that a 64 MiB bomb is 64 times over it."""
    monkeypatch.setattr(bundle, "MAX_EXPORT_BYTES", MiB)
    return MiB


def test_a_frame_declaring_more_than_a_restore_reads_is_refused_unread(small_limit: int) -> None:
    data = _zeros_frame(64 * MiB, declare=True)
    export_sha = hashlib.sha256(bytes(64 * MiB)).hexdigest()
    error, peak = _decompress_measured(data, _manifest(data, 64 * MiB, export_sha))
    assert str(error) == (
        "archive s-1-bomb: its export is 67108864 bytes, more than the 1048576 a restore reads"
    )
    assert peak < 4 * MiB, peak


def test_a_frame_declaring_another_size_than_its_manifest_is_refused_unread(
    small_limit: int,
) -> None:
    data = _zeros_frame(64 * MiB, declare=True)
    error, peak = _decompress_measured(data, _manifest(data, 1000))
    assert str(error) == "archive s-1-bomb: its frame declares 67108864 bytes, its manifest 1000"
    assert peak < 4 * MiB, peak


def test_a_frame_without_a_declared_size_is_read_no_further_than_its_manifest_says(
    small_limit: int,
) -> None:
    data = _zeros_frame(64 * MiB, declare=False)
    error, peak = _decompress_measured(data, _manifest(data, 1000))
    assert str(error) == (
        "archive s-1-bomb: decompresses to more than the 1000 bytes its manifest states"
    )
    assert peak < 4 * MiB, peak


@pytest.mark.parametrize(
    "manifest",
    [{}, {"content_bytes": "1000"}, {"content_bytes": -1}, {"content_bytes": True}],
    ids=["missing", "text", "negative", "boolean"],
)
def test_a_manifest_without_a_usable_export_size_is_refused(manifest: dict[str, Any]) -> None:
    data = zstandard.ZstdCompressor().compress(b"{}")
    full = {**_manifest(data, 0), **manifest}
    if not manifest:
        del full["content_bytes"]
    with pytest.raises(ArchiveError, match="its manifest states no export size"):
        decompress(data, full)


def _restore(server: RunningServer, vault: DataVault, archive_id: str) -> tuple[int, str, int]:
    """`memorygraph archive restore` as a user runs it: exit code, stderr, peak memory."""
    command = [sys.executable, "-m", "memorygraph", "archive", "restore", archive_id]
    command += ["--server", f"127.0.0.1:{server.port}", "--vault-url", vault.url]
    env = {**os.environ, "PYTHONPATH": str(REPO / "dataplane"), "MEMORYGRAPH_VAULT_TOKEN": TOKEN}
    restore = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    assert restore.stderr is not None
    stderr = restore.stderr.read()
    _, status, usage = os.wait4(restore.pid, 0)
    return os.waitstatus_to_exitcode(status), stderr, usage.ru_maxrss * 1024


@pytest.mark.slow
def test_restoring_a_128_kib_archive_that_declares_4_gib_fails_fast_in_little_memory(
    inprocess_server: RunningServer, vault: DataVault
) -> None:
    """Against a vault holding the bomb, the command costs what it costs to find an archive
    missing (the client and its libraries, about 140 MiB here), and a few MiB more."""
    data = _zeros_frame(4 << 30, declare=True)
    assert len(data) < 256 << 10
    manifest = _manifest(data, 4 << 30)
    stored = _vault_destination(vault).put_many([Bundle("s-1-bomb", "s-1", data, manifest)])
    assert stored == {"s-1-bomb": True}
    code, stderr, baseline = _restore(inprocess_server, vault, "s-1-missing")
    assert (code, stderr) == (1, "error: archive s-1-missing is not in the vault\n")
    code, stderr, peak = _restore(inprocess_server, vault, "s-1-bomb")
    print(f"archive restore: missing archive {baseline >> 20} MiB, the bomb {peak >> 20} MiB")
    assert code == 1, stderr
    assert stderr == (
        "error: archive s-1-bomb: its export is 4294967296 bytes, more than the 1073741824 a "
        "restore reads\n"
    )
    assert peak < baseline + 16 * MiB, (baseline, peak)
