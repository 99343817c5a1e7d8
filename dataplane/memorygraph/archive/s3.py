"""The S3 destination: any S3-compatible object store (AWS S3, MinIO, ...), through boto3.

Layout under `s3://BUCKET/PREFIX/`:

    ARCHIVE_ID.jsonl.zst        the compressed export
    ARCHIVE_ID.manifest.json    its manifest, written last: an archive without one is incomplete

Retention: on a bucket with Object Lock enabled, both objects are written in GOVERNANCE mode
until the policy's retain-until date, and with a legal hold when asked; elsewhere the dates are
kept in the manifest and object metadata only; deleting an archive before its retention ends
must be asked for (it bypasses GOVERNANCE mode). Credentials are given, or come from the usual
AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION); MEMORYGRAPH_S3_ENDPOINT
points at a non-AWS endpoint.

Objects are read to a bound, never whole: a manifest to `MAX_MANIFEST_BYTES`, an archive to the
size its manifest states (at most `MAX_ARCHIVE_BYTES`). The object's ContentLength is checked
before its body is read, and the body is read in chunks that stop at the bound.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from memorygraph.archive import bundle as archive_limits
from memorygraph.archive.bundle import ArchiveError, Bundle, RetentionPolicy

__all__ = ["MAX_MANIFEST_BYTES", "S3Destination"]

ENDPOINT_ENV = "MEMORYGRAPH_S3_ENDPOINT"
DATA_SUFFIX = ".jsonl.zst"
MANIFEST_SUFFIX = ".manifest.json"
# The largest manifest object read.
MAX_MANIFEST_BYTES = 1 << 20
_CHUNK = 1 << 20


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Destination:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        """Credentials given here win over the AWS variables and files boto3 otherwise reads."""
        if not bucket:
            raise ArchiveError("an S3 destination needs a bucket")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.name = f"s3://{bucket}/{self.prefix}"
        endpoint_url = endpoint_url or os.environ.get(ENDPOINT_ENV) or None
        self.s3 = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region or os.environ.get("AWS_REGION") or "us-east-1",
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(
                retries={"max_attempts": 5, "mode": "standard"},
                s3={"addressing_style": "path"} if endpoint_url else None,
            ),
        )
        self._locking: bool | None = None

    def close(self) -> None:
        self.s3.close()

    def _key(self, archive_id: str, suffix: str) -> str:
        return f"{self.prefix}{archive_id}{suffix}"

    def _fail(self, what: str, exc: Exception) -> ArchiveError:
        if isinstance(exc, ClientError):
            code = _code(exc)
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return ArchiveError(
                    f"{what}: S3 refused the credentials or the action ({code}); check "
                    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy"
                )
            message = exc.response.get("Error", {}).get("Message", "")
            return ArchiveError(f"{what}: S3 error {code}: {message}".rstrip(": "))
        return ArchiveError(f"{what}: {exc}")

    def _object_lock(self) -> bool:
        if self._locking is None:
            try:
                config = self.s3.get_object_lock_configuration(Bucket=self.bucket)
                enabled = config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
                self._locking = enabled == "Enabled"
            except ClientError as exc:
                if _code(exc) not in (
                    "ObjectLockConfigurationNotFoundError",
                    "ObjectLockConfigurationNotFound",
                    "NotImplemented",
                ):
                    raise self._fail(
                        f"reading the object-lock setting of {self.name}", exc
                    ) from exc
                self._locking = False
        return self._locking

    # -- the destination protocol -----------------------------------------------------------

    def check(self, policy: RetentionPolicy) -> None:
        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(f"bucket {self.bucket}", exc) from exc
        if not self._object_lock() and policy.legal_hold:
            # A hold recorded only in the manifest could never be lifted (`set_legal_hold`
            # needs Object Lock), and `delete` would refuse the archive for good.
            raise ArchiveError(
                f"bucket {self.bucket} has no Object Lock, so it cannot hold archives; create "
                "the bucket with Object Lock enabled or archive without --legal-hold"
            )

    def _read(self, key: str, limit: int, what: str) -> bytes:
        """The object at `key`, refused (unread) when it is larger than `limit` bytes."""
        found = self.s3.get_object(Bucket=self.bucket, Key=key)
        body = found["Body"]
        try:
            length = found.get("ContentLength")
            if isinstance(length, int) and length > limit:
                raise ArchiveError(f"{what}: the object is {length} bytes, more than {limit}")
            data = bytearray()
            for chunk in body.iter_chunks(_CHUNK):
                if len(data) + len(chunk) > limit:
                    raise ArchiveError(f"{what}: the object is larger than {limit} bytes")
                data += chunk
        finally:
            body.close()
        return bytes(data)

    def _manifest(self, archive_id: str) -> dict[str, Any] | None:
        what = f"the manifest of {archive_id}"
        try:
            body = self._read(self._key(archive_id, MANIFEST_SUFFIX), MAX_MANIFEST_BYTES, what)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise self._fail(f"reading the manifest of {archive_id}", exc) from exc
        except BotoCoreError as exc:
            raise self._fail(f"reading the manifest of {archive_id}", exc) from exc
        try:
            manifest = json.loads(body)
        except (ValueError, RecursionError):
            manifest = None
        if not isinstance(manifest, dict):
            raise ArchiveError(f"{what}: not a JSON object")
        return manifest

    def _put(self, key: str, body: bytes, bundle: Bundle, content_type: str) -> None:
        m = bundle.manifest
        extra: dict[str, Any] = {
            "Metadata": {
                "session-id": bundle.session_id,
                "content-sha256": m["content_sha256"],
                "compliance": m["compliance"],
                "retain-until": m["retain_until"],
            },
        }
        if self._object_lock():
            extra["ObjectLockMode"] = "GOVERNANCE"
            extra["ObjectLockRetainUntilDate"] = dt.datetime.fromisoformat(m["retain_until"])
            if m["legal_hold"]:
                extra["ObjectLockLegalHoldStatus"] = "ON"
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            ChecksumAlgorithm="SHA256",
            **extra,
        )

    def put(self, bundle: Bundle) -> bool:
        try:
            existing = self._manifest(bundle.archive_id)
            if existing is not None:
                if existing.get("sha256") != bundle.sha256:
                    raise ArchiveError(
                        f"archive {bundle.archive_id}: the bucket holds different bytes under "
                        "this id"
                    )
                if self._has_data(bundle.archive_id):
                    return False
                # A manifest alone: `delete` was interrupted after the data object went.
            self._put(
                self._key(bundle.archive_id, DATA_SUFFIX),
                bundle.data,
                bundle,
                "application/zstd",
            )
            manifest = json.dumps(bundle.manifest, indent=2, sort_keys=True).encode()
            self._put(
                self._key(bundle.archive_id, MANIFEST_SUFFIX),
                manifest,
                bundle,
                "application/json",
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(f"storing archive {bundle.archive_id}", exc) from exc
        return True

    def _has_data(self, archive_id: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=self._key(archive_id, DATA_SUFFIX))
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return False
            raise
        return True

    def put_many(self, bundles: list[Bundle]) -> dict[str, bool | ArchiveError]:
        """S3 has no batch upload: one `put` each, each with its own outcome."""
        results: dict[str, bool | ArchiveError] = {}
        for bundle in bundles:
            try:
                results[bundle.archive_id] = self.put(bundle)
            except ArchiveError as exc:
                results[bundle.archive_id] = exc
        return results

    def _data(self, archive_id: str, size: int) -> bytes:
        """The archive's bytes, refused when there are more than `size`."""
        try:
            body = self._read(self._key(archive_id, DATA_SUFFIX), size, f"archive {archive_id}")
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                raise ArchiveError(f"archive {archive_id}: its data object is missing") from None
            raise self._fail(f"reading archive {archive_id}", exc) from exc
        except BotoCoreError as exc:
            raise self._fail(f"reading archive {archive_id}", exc) from exc
        return body

    def verify(self, bundle: Bundle) -> None:
        """Read the archive back and compare it byte for byte."""
        if self._data(bundle.archive_id, len(bundle.data)) != bundle.data:
            raise ArchiveError(
                f"archive {bundle.archive_id}: the bytes read back differ from those written"
            )
        if self._manifest(bundle.archive_id) is None:
            raise ArchiveError(f"archive {bundle.archive_id}: its manifest is missing")

    def fetch(self, archive_id: str) -> tuple[dict[str, Any], bytes]:
        manifest = self._manifest(archive_id)
        if manifest is None:
            raise ArchiveError(f"archive {archive_id} is not in {self.name}")
        size = manifest.get("bytes")
        limit = archive_limits.MAX_ARCHIVE_BYTES
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= limit:
            raise ArchiveError(
                f"archive {archive_id}: its manifest states no size of at most {limit} bytes"
            )
        return manifest, self._data(archive_id, size)

    def list(self, session_id: str = "") -> Iterator[dict[str, Any]]:
        paginator = self.s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + session_id):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if key.endswith(MANIFEST_SUFFIX):
                        archive_id = key[len(self.prefix) : -len(MANIFEST_SUFFIX)]
                        manifest = self._manifest(archive_id)
                        if manifest is not None:
                            manifest["legal_hold"] = self._legal_hold(key, manifest)
                            yield manifest
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(f"listing {self.name}", exc) from exc

    def _legal_hold(self, key: str, manifest: dict[str, Any]) -> bool:
        if not self._object_lock():
            return bool(manifest.get("legal_hold"))
        try:
            hold = self.s3.get_object_legal_hold(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in ("NoSuchObjectLockConfiguration", "InvalidRequest"):
                return False
            raise
        return bool(hold.get("LegalHold", {}).get("Status") == "ON")

    def _retained_until(self, key: str) -> dt.datetime | None:
        """The end of the object's Object Lock retention, or None when it has none."""
        try:
            retention = self.s3.get_object_retention(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in ("NoSuchObjectLockConfiguration", "InvalidRequest"):
                return None
            raise
        until = retention.get("Retention", {}).get("RetainUntilDate")
        return until if isinstance(until, dt.datetime) else None

    def delete(self, archive_id: str, *, bypass_governance_retention: bool = False) -> None:
        """Remove every version of both objects (erasure, not a delete marker).

        An archive still under GOVERNANCE retention is deleted only when asked to bypass it:
        the retention date is the compliance policy the archive was written under.
        """
        keys = [self._key(archive_id, DATA_SUFFIX), self._key(archive_id, MANIFEST_SUFFIX)]
        try:
            manifest = self._manifest(archive_id)
            if manifest is None:
                raise ArchiveError(f"archive {archive_id} is not in {self.name}")
            if self._legal_hold(keys[0], manifest):
                raise ArchiveError(
                    f"archive {archive_id} is under legal hold; lift the hold before deleting it"
                )
            until = self._retained_until(keys[0]) if self._object_lock() else None
            retained = until is not None and until > dt.datetime.now(dt.UTC)
            if retained and not bypass_governance_retention:
                raise ArchiveError(
                    f"archive {archive_id} is under retention until {until:%Y-%m-%d}; "
                    "deleting it earlier bypasses GOVERNANCE retention: ask for it with "
                    "--bypass-governance-retention (needs s3:BypassGovernanceRetention)"
                )
            for key in keys:
                pages = self.s3.get_paginator("list_object_versions").paginate(
                    Bucket=self.bucket, Prefix=key
                )
                found = [
                    v
                    for page in pages
                    for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                    if v["Key"] == key
                ]
                for version in found or [{"Key": key, "VersionId": None}]:
                    args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
                    if version.get("VersionId"):
                        args["VersionId"] = version["VersionId"]
                    if self._object_lock() and bypass_governance_retention:
                        args["BypassGovernanceRetention"] = True
                    self.s3.delete_object(**args)
        except ClientError as exc:
            if self._object_lock() and _code(exc) in ("AccessDenied", "InvalidRequest"):
                raise ArchiveError(
                    f"archive {archive_id} could not be deleted: the bucket protects it (legal "
                    "hold, or retention the credentials may not bypass)"
                ) from None
            raise self._fail(f"deleting archive {archive_id}", exc) from exc
        except BotoCoreError as exc:
            raise self._fail(f"deleting archive {archive_id}", exc) from exc

    def set_legal_hold(self, archive_id: str, on: bool) -> None:
        manifest = self._manifest(archive_id)
        if manifest is None:
            raise ArchiveError(f"archive {archive_id} is not in {self.name}")
        if not self._object_lock():
            raise ArchiveError(
                f"bucket {self.bucket} has no Object Lock, so it cannot hold objects; create "
                "the bucket with Object Lock enabled"
            )
        try:
            for suffix in (DATA_SUFFIX, MANIFEST_SUFFIX):
                self.s3.put_object_legal_hold(
                    Bucket=self.bucket,
                    Key=self._key(archive_id, suffix),
                    LegalHold={"Status": "ON" if on else "OFF"},
                )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(f"setting the legal hold of {archive_id}", exc) from exc
