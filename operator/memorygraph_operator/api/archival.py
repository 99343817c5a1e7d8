"""Archival of a graph's old sessions: the CronJob's schedule, retention and destination.

Part of the ``MemoryGraph`` API (``spec.archival``, ``status.archival``); apart only to keep
modules small.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from memorygraph_operator.api.base import KubeModel, SecretKeyRef, SecretRef, cel

__all__ = [
    "CRON_PATTERN",
    "DURATION_PATTERN",
    "ArchivalDestination",
    "ArchivalSpec",
    "ArchivalStatus",
    "S3Destination",
    "VaultDestination",
]

# Five whitespace-separated fields of the characters cron accepts; no "@daily" macros and no
# seconds field, because the CronJob controller accepts neither consistently across versions.
CRON_PATTERN = r"^\s*[0-9A-Za-z*/,?-]+(\s+[0-9A-Za-z*/,?-]+){4}\s*$"
# Go-style durations the archive command accepts: 720h, 30m, 1h30m, 90s.
DURATION_PATTERN = r"^([0-9]+(h|m|s))+$"


class VaultDestination(KubeModel):
    """The Data-Vault API as archive destination."""

    url: str = Field(pattern=r"^https?://", description="Base URL of the Data-Vault API.")
    secret_ref: SecretKeyRef = Field(description="Secret key holding the Data-Vault token.")


class S3Destination(KubeModel):
    """An S3-compatible bucket as archive destination."""

    bucket: str = Field(min_length=3, max_length=63, description="Bucket name.")
    prefix: str = Field(default="memorygraph/", description="Key prefix of the archives.")
    secret_ref: SecretRef = Field(
        description=(
            "Secret with the keys AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and optionally "
            "MEMORYGRAPH_S3_ENDPOINT."
        )
    )


class ArchivalDestination(KubeModel):
    """Exactly one archive destination."""

    model_config = KubeModel.model_config | {
        "json_schema_extra": cel(
            ("has(self.vault) != has(self.s3)", "set exactly one of vault and s3")
        )
    }

    vault: VaultDestination | None = None
    s3: S3Destination | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ArchivalDestination:
        if (self.vault is None) == (self.s3 is None):
            raise ValueError("set exactly one of vault and s3")
        return self


class ArchivalSpec(KubeModel):
    """A CronJob that archives old sessions and removes them from the graph once verified."""

    schedule: str = Field(
        default="0 3 * * *",
        # A bound keeps the CEL regex's estimated cost within the API server's budget.
        max_length=128,
        description="Five-field cron schedule.",
        json_schema_extra={
            "pattern": CRON_PATTERN,
            **cel(
                (
                    f"self.matches('{CRON_PATTERN.replace(chr(92), chr(92) * 2)}')",
                    "schedule must be a five-field cron expression",
                )
            ),
        },
    )
    time_zone: str | None = Field(default=None, description="IANA time zone of the schedule.")
    suspend: bool = Field(default=False, description="Stop scheduling new archival runs.")
    older_than: str = Field(
        default="720h", pattern=DURATION_PATTERN, description="Archive sessions older than this."
    )
    compliance: Literal["Standard", "PCI", "HIPAA", "GDPR", "SOC2"] = Field(
        default="Standard", description="Retention class of the archive."
    )
    destination: ArchivalDestination
    client_certificate_secret_ref: SecretRef | None = Field(
        default=None,
        description=(
            "Secret (type kubernetes.io/tls) with the client certificate `tls.crt` and key "
            "`tls.key` the archival job presents when tls.requireClientCertificate is on, "
            "issued by the CA in the TLS Secret's ca.crt; required then, since the job never "
            "uses the server's own key."
        ),
    )
    successful_jobs_history_limit: int = Field(default=3, ge=0, le=100)
    failed_jobs_history_limit: int = Field(default=1, ge=0, le=100)

    @model_validator(mode="after")
    def _five_fields(self) -> ArchivalSpec:
        if len(self.schedule.split()) != 5 or not re.match(CRON_PATTERN, self.schedule):
            raise ValueError("schedule must be a five-field cron expression")
        return self


class ArchivalStatus(KubeModel):
    """What the archival CronJob last did."""

    last_schedule_time: str | None = None
    last_successful_time: str | None = None
