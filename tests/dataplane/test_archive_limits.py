"""Reading an archive back trusts nothing in it: zstandard frames that declare gigabytes or say
nothing, manifests that lie, and a Data-Vault whose answers are larger than any archive can be
or compressed. Each is refused with a message saying why, before the memory is spent."""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import zstandard
from memorygraph.archive import bundle
from memorygraph.archive.bundle import ArchiveError, Bundle, decompress
from memorygraph.archive.vault import VaultDestination
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


# --- the Data-Vault's answers ---------------------------------------------------------------

Answer = Callable[[BaseHTTPRequestHandler], None]


def _send(
    handler: BaseHTTPRequestHandler, body: bytes, *, length: bool = True, **headers: str
) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    if length:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        handler.wfile.write(body)  # unless the client stopped reading, as it should


@pytest.fixture
def rogue_vault() -> Iterator[Callable[[Answer], str]]:
    """A vault whose every answer is what the test writes; gives its URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Answer) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


_LISTING = json.dumps({"archives": [], "next_page_token": "", "padding": " " * (20 * MiB)})


@pytest.mark.parametrize("length", [True, False], ids=["declared", "undeclared"])
def test_a_vault_answer_larger_than_its_bound_is_refused_unread(
    rogue_vault: Callable[[Answer], str], length: bool
) -> None:
    url = rogue_vault(lambda handler: _send(handler, _LISTING.encode(), length=length))
    destination = VaultDestination(url, token=TOKEN, backoff=0.01)
    with pytest.raises(ArchiveError) as info:
        list(destination.list())
    expected = "is 20971574 bytes, more than" if length else "larger than the 16777216 bytes"
    assert str(info.value).startswith("GET /api/v1/archive: the vault's answer was refused")
    assert expected in str(info.value)


def test_a_compressed_vault_answer_is_refused(rogue_vault: Callable[[Answer], str]) -> None:
    """Gzip of 20 MiB of blanks is 20 KiB: decoding it would be the bomb again."""
    body = gzip.compress(_LISTING.encode())
    url = rogue_vault(lambda handler: _send(handler, body, Content_Encoding="gzip"))
    with pytest.raises(ArchiveError, match=r"the answer is compressed \(gzip\)"):
        list(VaultDestination(url, token=TOKEN, backoff=0.01).list())


def test_archive_content_from_the_vault_is_read_to_the_largest_archive_and_no_further(
    rogue_vault: Callable[[Answer], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bundle, "MAX_ARCHIVE_BYTES", MiB)
    monkeypatch.setattr("memorygraph.archive.vault.MAX_ANSWER_BYTES", 64 << 10)
    content = base64.b64encode(os.urandom(4 * MiB)).decode()
    answer = json.dumps({"id": "a", "manifest": {}, "content": content}).encode()
    url = rogue_vault(lambda handler: _send(handler, answer))
    with pytest.raises(ArchiveError, match="more than the 1463640 accepted"):
        VaultDestination(url, token=TOKEN, backoff=0.01).fetch("a")
