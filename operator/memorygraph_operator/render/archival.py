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

__all__ = ["ARCHIVAL_KEY", "render_archival_cronjob"]
# Where the job finds the graph's TLS Secret (ca.crt; tls.crt and tls.key for mutual TLS).
JOB_TLS_DIR = "/etc/memorygraph/tls"


def _secret_env(name: str, secret: str, key: str, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def _args_and_env(g: GraphInputs) -> tuple[list[str], list[dict[str, Any]]]:
    a = g.spec.archival
    assert a is not None
    args = [
        "archive",
        "run",
        "--server",
        f"{Names(g.name).service}.{g.namespace}.svc:{GRPC_PORT}",
        "--older-than",
        a.older_than,
        "--compliance",
        a.compliance,
    ]
    env: list[dict[str, Any]] = []
    dest = a.destination
    if dest.vault is not None:
        args += ["--vault-url", dest.vault.url]
        ref = dest.vault.secret_ref
        env.append(_secret_env("MEMORYGRAPH_VAULT_TOKEN", ref.name, ref.key))
    elif dest.s3 is not None:
        args += ["--s3-bucket", dest.s3.bucket, "--s3-prefix", dest.s3.prefix]
        secret = dest.s3.secret_ref.name
        env.append(_secret_env("AWS_ACCESS_KEY_ID", secret, "AWS_ACCESS_KEY_ID"))
        env.append(_secret_env("AWS_SECRET_ACCESS_KEY", secret, "AWS_SECRET_ACCESS_KEY"))
        env.append(
            _secret_env("MEMORYGRAPH_S3_ENDPOINT", secret, "MEMORYGRAPH_S3_ENDPOINT", optional=True)
        )
        env.append(_secret_env("AWS_REGION", secret, "AWS_REGION", optional=True))
    keys = auth_secret_name(g)
    if keys is not None:
        env.append(_secret_env("MEMORYGRAPH_API_KEY", keys, ARCHIVAL_KEY))
    if g.spec.tls is not None:
        # The server is verified against the Secret's ca.crt; with mutual TLS the job presents
        # the graph's own certificate, which that CA signed.
        args += ["--ca-cert", f"{JOB_TLS_DIR}/ca.crt"]
        if g.spec.tls.require_client_certificate:
            args += ["--client-cert", f"{JOB_TLS_DIR}/tls.crt"]
            args += ["--client-key", f"{JOB_TLS_DIR}/tls.key"]
    return args, env


def _tls_volume(g: GraphInputs) -> dict[str, Any]:
    assert g.spec.tls is not None
    keys = ["ca.crt"]
    if g.spec.tls.require_client_certificate:
        keys += ["tls.crt", "tls.key"]
    return {
        "name": "tls",
        "secret": {
            "secretName": g.spec.tls.secret_ref.name,
            "items": [{"key": k, "path": k} for k in keys],
            "defaultMode": 0o440,
        },
    }


def render_archival_cronjob(g: GraphInputs, env: RenderEnv) -> dict[str, Any] | None:
    """The archival CronJob, or None when archival is not configured."""
    a = g.spec.archival
    if a is None:
        return None
    args, container_env = _args_and_env(g)
    container: dict[str, Any] = {
        "name": "archive",
        "image": g.image_in(env),
        "command": ["memorygraph"],
        "args": args,
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if container_env:
        container["env"] = container_env
    if g.spec.image_pull_policy:
        container["imagePullPolicy"] = g.spec.image_pull_policy
    tpl = g.spec.pod_template
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
    }
    if g.spec.tls is not None:
        pod["volumes"].append(_tls_volume(g))
        container["volumeMounts"].append(
            {"name": "tls", "mountPath": JOB_TLS_DIR, "readOnly": True}
        )
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
