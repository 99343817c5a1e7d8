"""Archival to S3-compatible storage: a real MinIO server (built from its Go module by
`make tools`) on 127.0.0.1, with Object Lock retention and legal holds."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from memorygraph.archive.bundle import ArchiveError, Bundle, RetentionPolicy, decompress
from memorygraph.archive.job import restore_archive
from memorygraph.archive.s3 import S3Destination
from memorygraph.client import Client
from memorygraph.errors import NotFound
from memorygraph.server import RunningServer

from .archive_support import archive_all, record_session
from .conftest import REPO, free_port

USER, PASSWORD = "memorygraph", "memorygraph-secret"


def _minio_binary() -> str | None:
    found = shutil.which("minio")
    cached = Path.home() / ".cache/memorygraph/bin/minio"
    return found or (str(cached) if cached.exists() else None)


class MinIO:
    def __init__(self, root: Path) -> None:
        binary = _minio_binary()
        if binary is None:
            message = "no minio binary: `make tools` builds it from its Go module"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = root / "minio.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    "server",
                    str(root / "data"),
                    "--address",
                    f"127.0.0.1:{self.port}",
                    "--console-address",
                    f"127.0.0.1:{free_port()}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={
                    **os.environ,
                    "MINIO_ROOT_USER": USER,
                    "MINIO_ROOT_PASSWORD": PASSWORD,
                    "MINIO_BROWSER": "off",
                    "MINIO_UPDATE": "off",
                },
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.endpoint}/minio/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"minio did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.2)

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=USER,
            aws_secret_access_key=PASSWORD,
            region_name="us-east-1",
        )

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinIO]:
    server = MinIO(tmp_path_factory.mktemp("minio"))
    yield server
    server.stop()


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", USER)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", PASSWORD)


def _archive_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memorygraph", "archive", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _bucket(minio: MinIO, name: str, *, lock: bool) -> str:
    """A new bucket named after `name` (every test runs twice, with one process and with two
    workers, against one MinIO)."""
    name = f"{name}-{secrets.token_hex(4)}"
    s3 = minio.client()
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock)
    return name


def test_archive_to_a_locked_bucket_restore_and_erase(
    inprocess_server: RunningServer, minio: MinIO, credentials: None
) -> None:
    bucket = _bucket(minio, "locked", lock=True)
    destination = S3Destination(bucket, "graphs/prod", endpoint_url=minio.endpoint)
    lines: list[str] = []
    with Client(f"127.0.0.1:{inprocess_server.port}") as mg:
        sessions = [record_session(mg, f"s3-{i}") for i in range(2)]
        exports = {sid: mg.export_session(sid)[0] for sid in sessions}
        summary = archive_all(
            mg, destination, policy=RetentionPolicy("GDPR"), progress=lines.append
        )
        assert (summary.archived, summary.failed) == (2, 0), lines
        manifests = list(destination.list())
        assert sorted(m["session_id"] for m in manifests) == sorted(sessions)
        s3 = minio.client()
        for manifest in manifests:
            key = f"graphs/prod/{manifest['archive_id']}.jsonl.zst"
            head = s3.head_object(Bucket=bucket, Key=key)
            # Object Lock retention from the GDPR policy (2555 days), in governance mode.
            assert head["ObjectLockMode"] == "GOVERNANCE"
            until = head["ObjectLockRetainUntilDate"]
            assert until - dt.datetime.now(dt.UTC) > dt.timedelta(days=2554)
            assert head["Metadata"]["content-sha256"] == manifest["content_sha256"]
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert decompress(body, manifest) == exports[manifest["session_id"]]

        first = manifests[0]
        with pytest.raises(NotFound):
            mg.get_session(first["session_id"])
        restore_archive(mg, destination, first["archive_id"])
        assert mg.export_session(first["session_id"])[0] == exports[first["session_id"]]

        # Legal hold: deletion refused until lifted; deletion removes every version.
        destination.set_legal_hold(first["archive_id"], True)
        assert [m["legal_hold"] for m in destination.list(first["session_id"])] == [True]
        with pytest.raises(ArchiveError, match="legal hold"):
            destination.delete(first["archive_id"])
        destination.set_legal_hold(first["archive_id"], False)
        # Still under GOVERNANCE retention: erasing it before then must be asked for.
        with pytest.raises(ArchiveError, match="--bypass-governance-retention"):
            destination.delete(first["archive_id"])
        assert [m["archive_id"] for m in destination.list(first["session_id"])] == [
            first["archive_id"]
        ]
        destination.delete(first["archive_id"], bypass_governance_retention=True)
        versions = s3.list_object_versions(
            Bucket=bucket, Prefix=f"graphs/prod/{first['archive_id']}"
        )
        assert not versions.get("Versions") and not versions.get("DeleteMarkers")
        assert [m["archive_id"] for m in destination.list()] == [manifests[1]["archive_id"]]
    destination.close()


def test_command_line_against_a_plain_bucket(
    inprocess_server: RunningServer, minio: MinIO, tmp_path: Path
) -> None:
    bucket = _bucket(minio, "plain", lock=False)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "dataplane"),
        "AWS_ACCESS_KEY_ID": USER,
        "AWS_SECRET_ACCESS_KEY": PASSWORD,
        "MEMORYGRAPH_S3_ENDPOINT": minio.endpoint,
    }
    server = f"127.0.0.1:{inprocess_server.port}"
    with Client(server) as mg:
        sid = record_session(mg, "cli")
    where = ["--s3-bucket", bucket, "--s3-prefix", "mg"]

    def archive(*args: str) -> subprocess.CompletedProcess[str]:
        return _archive_command(env, *args)

    metrics = tmp_path / "archive.prom"
    run = archive(
        "run", "--server", server, "--older-than", "0s", "--metrics-file", str(metrics), *where
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 archived" in run.stdout and "0 failed" in run.stdout
    assert 'memorygraph_archive_job_sessions_total{result="archived"} 1.0' in metrics.read_text()
    listing = archive("list", *where)
    assert listing.returncode == 0 and sid in listing.stdout
    archive_id = listing.stdout.split('"archive_id": "')[1].split('"')[0]
    # No Object Lock on this bucket: a legal hold cannot be honoured, and says so.
    hold = archive("hold", archive_id, "on", *where)
    assert hold.returncode == 1 and "no Object Lock" in hold.stderr
    restore = archive("restore", "--server", server, archive_id, *where)
    assert restore.returncode == 0, restore.stderr
    deleted = archive("delete", archive_id, *where)
    assert deleted.returncode == 0, deleted.stderr
    missing = archive("restore", "--server", server, archive_id, *where)
    assert missing.returncode == 1 and f"is not in s3://{bucket}/mg/" in missing.stderr
    wrong = subprocess.run(
        [sys.executable, "-m", "memorygraph", "archive", "list", *where],
        capture_output=True,
        text=True,
        env={**env, "AWS_SECRET_ACCESS_KEY": "wrong"},
        timeout=60,
    )
    assert wrong.returncode == 1 and "refused the credentials" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_command_line_reads_credentials_from_files_and_bypasses_retention_only_when_asked(
    inprocess_server: RunningServer, minio: MinIO, tmp_path: Path
) -> None:
    """The archival job's Secret mounted as files: no credential in the environment."""
    bucket = _bucket(minio, "locked-cli", lock=True)
    secret = tmp_path / "s3"
    secret.mkdir()
    for name, value in [
        ("AWS_ACCESS_KEY_ID", USER),
        ("AWS_SECRET_ACCESS_KEY", PASSWORD + "\n"),  # as a Secret written with a newline
        ("MEMORYGRAPH_S3_ENDPOINT", minio.endpoint),
    ]:
        (secret / name).write_text(value)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MEMORYGRAPH_"))},
        "PYTHONPATH": str(REPO / "dataplane"),
    }
    server = f"127.0.0.1:{inprocess_server.port}"
    with Client(server) as mg:
        sid = record_session(mg, "files")
    where = ["--s3-bucket", bucket, "--s3-credentials-dir", str(secret)]

    def archive(*args: str) -> subprocess.CompletedProcess[str]:
        return _archive_command(env, *args)

    run = archive("run", "--server", server, "--older-than", "0s", "--compliance", "PCI", *where)
    assert run.returncode == 0 and "1 archived" in run.stdout, run.stdout + run.stderr
    (manifest,) = S3Destination(
        bucket, endpoint_url=minio.endpoint, access_key_id=USER, secret_access_key=PASSWORD
    ).list(sid)
    refused = archive("delete", manifest["archive_id"], *where)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "under retention until" in refused.stderr
    assert "--bypass-governance-retention" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert sid in archive("list", *where).stdout
    deleted = archive("delete", manifest["archive_id"], "--bypass-governance-retention", *where)
    assert deleted.returncode == 0, deleted.stderr
    assert sid not in archive("list", *where).stdout
    vault = archive(
        "delete", "x", "--bypass-governance-retention", "--vault-url", "http://127.0.0.1:1"
    )
    assert vault.returncode == 2 and "S3 Object Lock only" in vault.stderr
    (secret / "AWS_ACCESS_KEY_ID").unlink()
    missing = archive("list", *where)
    assert missing.returncode == 2 and "AWS_ACCESS_KEY_ID" in missing.stderr


def test_a_legal_hold_is_refused_up_front_by_a_bucket_without_object_lock(
    inprocess_server: RunningServer, minio: MinIO, credentials: None
) -> None:
    """A hold the bucket cannot keep could not be lifted either (`archive hold` refuses), and
    `archive delete` would refuse the archive for good."""
    bucket = _bucket(minio, "plain-hold", lock=False)
    destination = S3Destination(bucket, endpoint_url=minio.endpoint)
    with Client(f"127.0.0.1:{inprocess_server.port}") as mg:
        sid = record_session(mg, "held")
        with pytest.raises(ArchiveError, match="no Object Lock"):
            archive_all(mg, destination, policy=RetentionPolicy(legal_hold=True))
        mg.get_session(sid)
    assert list(destination.list()) == []
    destination.close()


def test_an_archive_whose_data_object_is_gone_is_written_again(
    inprocess_server: RunningServer, minio: MinIO, credentials: None
) -> None:
    """`delete` removes the data object first: a kill right after leaves a manifest alone,
    which must read as incomplete (written again), not as an archive already in place."""
    bucket = _bucket(minio, "half-erased", lock=False)
    destination = S3Destination(bucket, endpoint_url=minio.endpoint)
    with Client(f"127.0.0.1:{inprocess_server.port}") as mg:
        sid = record_session(mg, "half")
        data, info = mg.export_session(sid, for_archive=True)
        built = Bundle.build(
            data,
            session_id=sid,
            content_sha256=info.content_sha256,
            counts={"nodes": info.nodes, "edges": info.edges, "events": info.events},
            format_version=info.format_version,
            schema_version=2,
            policy=RetentionPolicy(),
            source="test",
        )
        assert destination.put(built)
        minio.client().delete_object(Bucket=bucket, Key=f"{built.archive_id}.jsonl.zst")
        summary = archive_all(mg, destination, policy=RetentionPolicy())
        assert (summary.archived, summary.failed) == (1, 0), summary.failures
        with pytest.raises(NotFound):
            mg.get_session(sid)
        destination.verify(built)
    destination.close()


def test_objects_larger_than_their_manifest_or_bound_are_refused_unread(
    minio: MinIO, credentials: None
) -> None:
    """A bucket is storage the job does not control: the data object must be the size its
    manifest states, and a manifest is at most 1 MiB. Both are checked before the body is
    read (ContentLength), and while it is read."""
    bucket = _bucket(minio, "oversized", lock=False)
    s3 = minio.client()
    data = os.urandom(3 << 20)
    manifest = {"archive_id": "s-1-big", "bytes": 1000, "sha256": "0" * 64}
    s3.put_object(Bucket=bucket, Key="s-1-big.jsonl.zst", Body=data)
    s3.put_object(Bucket=bucket, Key="s-1-big.manifest.json", Body=json.dumps(manifest).encode())
    padded = json.dumps({**manifest, "archive_id": "s-2-big", "padding": " " * (2 << 20)})
    s3.put_object(Bucket=bucket, Key="s-2-big.manifest.json", Body=padded.encode())
    destination = S3Destination(bucket, endpoint_url=minio.endpoint)
    with pytest.raises(ArchiveError) as info:
        destination.fetch("s-1-big")
    assert str(info.value) == "archive s-1-big: the object is 3145728 bytes, more than 1000"
    with pytest.raises(ArchiveError) as info:
        destination.fetch("s-2-big")
    assert str(info.value) == (
        "the manifest of s-2-big: the object is 2097285 bytes, more than 1048576"
    )
    destination.close()
