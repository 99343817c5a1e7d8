"""The archival CronJob: ``memorygraph archive run`` against the graph's client Service."""

from __future__ import annotations

from typing import Any

from memorygraph_operator.render.context import GraphInputs, RenderEnv
from memorygraph_operator.render.image import (
    GRPC_PORT,
    container_security_context,
    pod_security_context,
)
from memorygraph_operator.render.metadata import archival_pod_labels, object_meta
from memorygraph_operator.render.names import Names
from memorygraph_operator.render.secrets import ARCHIVAL_KEY, auth_secret_name

__all__ = ["ARCHIVAL_KEY", "JOB_SECRETS_DIR", "render_archival_cronjob"]

# Where the job finds its secrets, each a file of one projected volume: never environment
# variables, which every process of the container inherits and crash reports tend to include.
JOB_SECRETS_DIR = "/etc/memorygraph/archival"
# The keys of an S3 destination's Secret: the two it must hold, and those read when present.
S3_REQUIRED_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
S3_OPTIONAL_KEYS = ("AWS_REGION", "MEMORYGRAPH_S3_ENDPOINT")


class _Secrets:
    """The job's projected secret volume, and the command-line options naming its files."""

    def __init__(self) -> None:
        self.sources: list[dict[str, Any]] = []
        self.args: list[str] = []

    def mount(self, secret: str, files: dict[str, str], optional: bool = False) -> None:
        """Mount keys of ``secret`` (key → path inside the volume)."""
        source: dict[str, Any] = {
            "name": secret,
            "items": [{"key": k, "path": path} for k, path in files.items()],
        }
        if optional:
            source["optional"] = True
        self.sources.append({"secret": source})

    def option(self, name: str, path: str) -> None:
        """Pass ``path`` inside the volume to the command as ``name``."""
        self.args += [name, f"{JOB_SECRETS_DIR}/{path}"]


def _destination(g: GraphInputs, secrets: _Secrets) -> list[str]:
    assert g.spec.archival is not None
    dest = g.spec.archival.destination
    if dest.vault is not None:
        ref = dest.vault.secret_ref
        secrets.mount(ref.name, {ref.key: "vault/token"})
        secrets.option("--vault-token-file", "vault/token")
        return ["--vault-url", dest.vault.url]
    assert dest.s3 is not None
    name = dest.s3.secret_ref.name
    secrets.mount(name, {k: f"s3/{k}" for k in S3_REQUIRED_KEYS})
    secrets.mount(name, {k: f"s3/{k}" for k in S3_OPTIONAL_KEYS}, optional=True)
    secrets.option("--s3-credentials-dir", "s3")
    return ["--s3-bucket", dest.s3.bucket, "--s3-prefix", dest.s3.prefix]


def _connection(g: GraphInputs, secrets: _Secrets) -> None:
    keys = auth_secret_name(g)
    if keys is not None:
        secrets.mount(keys, {ARCHIVAL_KEY: "auth/api-key"})
        secrets.option("--api-key-file", "auth/api-key")
    tls, archival = g.spec.tls, g.spec.archival
    if tls is None or archival is None:
        return
    # The server is verified against the TLS Secret's ca.crt; with mutual TLS the job presents
    # a certificate of its own, never the server's key.
    secrets.mount(tls.secret_ref.name, {"ca.crt": "tls/ca.crt"})
    secrets.option("--ca-cert", "tls/ca.crt")
    client = archival.client_certificate_secret_ref
    if tls.require_client_certificate and client is not None:
        secrets.mount(client.name, {"tls.crt": "client/tls.crt", "tls.key": "client/tls.key"})
        secrets.option("--client-cert", "client/tls.crt")
        secrets.option("--client-key", "client/tls.key")


def _args_and_volume(g: GraphInputs) -> tuple[list[str], dict[str, Any]]:
    a = g.spec.archival
    assert a is not None
    secrets = _Secrets()
    destination = _destination(g, secrets)
    _connection(g, secrets)
    args = [
        "archive",
        "run",
        "--server",
        f"{Names(g.name).service}.{g.namespace}.svc:{GRPC_PORT}",
        "--older-than",
        a.older_than,
        "--compliance",
        a.compliance,
        *destination,
        *secrets.args,
    ]
    volume = {"name": "secrets", "projected": {"sources": secrets.sources, "defaultMode": 0o440}}
    return args, volume


def render_archival_cronjob(g: GraphInputs, env: RenderEnv) -> dict[str, Any] | None:
    """The archival CronJob, or None when archival is not configured."""
    a = g.spec.archival
    if a is None:
        return None
    args, secrets = _args_and_volume(g)
    container: dict[str, Any] = {
        "name": "archive",
        "image": g.image_in(env),
        "command": ["memorygraph"],
        "args": args,
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "secrets", "mountPath": JOB_SECRETS_DIR, "readOnly": True},
        ],
    }
    if g.spec.image_pull_policy:
        container["imagePullPolicy"] = g.spec.image_pull_policy
    tpl = g.spec.pod_template
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}, secrets],
    }
    if tpl is not None and tpl.image_pull_secrets:
        pod["imagePullSecrets"] = [s.wire() for s in tpl.image_pull_secrets]
    spec: dict[str, Any] = {
        "schedule": a.schedule,
        "suspend": a.suspend,
        # A run deletes what it has shipped: two overlapping runs would race on the same sessions.
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": 3600,
        "successfulJobsHistoryLimit": a.successful_jobs_history_limit,
        "failedJobsHistoryLimit": a.failed_jobs_history_limit,
        "jobTemplate": {
            "metadata": {"labels": archival_pod_labels(g)},
            "spec": {
                "backoffLimit": 2,
                "template": {
                    "metadata": {"labels": archival_pod_labels(g)},
                    "spec": pod,
                },
            },
        },
    }
    if a.time_zone:
        spec["timeZone"] = a.time_zone
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": object_meta(g, Names(g.name).cronjob, "archival"),
        "spec": spec,
    }
