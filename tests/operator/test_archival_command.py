"""The archival CronJob's command line is one the `memorygraph archive run` command accepts, and
every secret it reads is a file its volume mounts, never an environment variable."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from memorygraph.archive.cli import cmd_run
from memorygraph.cli import build_parser
from memorygraph_operator.reconcile.inputs import parse_graph
from memorygraph_operator.render import RenderEnv, render_children
from operator_support import load_example

# Where the job's secret volume is mounted (docs/operator.md).
JOB_SECRETS_DIR = "/etc/memorygraph/archival"


def _job(manifest: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    manifest["metadata"].setdefault("uid", "0b5c3f0e-3b1a-4c5e-9a51-000000000001")
    children = render_children(parse_graph(manifest), RenderEnv())
    (cronjob,) = [c.body for c in children if c.kind == "CronJob" and c.body is not None]
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return dict(pod), dict(container)


def _parsed(manifest: dict[str, Any], root: Path) -> Any:
    """The job's arguments as the command parses them, its volume filled with one file per key
    (holding ``<secret>/<key>``) at the path the kubelet would use."""
    pod, container = _job(manifest)
    assert "env" not in container
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == JOB_SECRETS_DIR]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    for source in volume["projected"]["sources"]:
        for item in source["secret"]["items"]:
            target = root / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f"{source['secret']['name']}/{item['key']}\n")
    args = [a.replace(JOB_SECRETS_DIR, str(root)) for a in container["args"]]
    return build_parser().parse_args(args)


def test_vault_archival_job_parses_as_archive_run(tmp_path: Path) -> None:
    args = _parsed(load_example("memorygraph-full.yaml"), tmp_path)
    assert args.func is cmd_run
    assert args.server == "agents-memory.apps.svc:50051"
    assert args.older_than == dt.timedelta(hours=2160)
    assert args.compliance == "GDPR"
    assert args.vault_url and not args.s3_bucket
    assert args.vault_token == "data-vault/token"
    # Generated keys: the job authenticates with the archival key, not the applications' key.
    assert args.api_key == "agents-memory-api-keys/archival-api-key"
    assert args.ca_cert == tmp_path / "tls/ca.crt"
    assert args.client_cert is None and args.client_key is None


def test_s3_archival_job_parses_as_archive_run(tmp_path: Path) -> None:
    manifest = load_example("memorygraph-minimal.yaml")
    manifest["spec"]["archival"] = {
        "olderThan": "1h30m",
        "compliance": "PCI",
        "destination": {
            "s3": {"bucket": "archives", "prefix": "prod", "secretRef": {"name": "s3-creds"}}
        },
    }
    args = _parsed(manifest, tmp_path)
    assert args.func is cmd_run
    assert (args.s3_bucket, args.s3_prefix, args.vault_url) == ("archives", "prod", None)
    assert args.older_than == dt.timedelta(minutes=90)
    assert args.s3_credentials == {
        key: f"s3-creds/{key}"
        for key in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "MEMORYGRAPH_S3_ENDPOINT",
        )
    }
    assert args.api_key == "chat-memory-api-keys/archival-api-key"


def test_with_mutual_tls_the_job_presents_its_own_certificate(tmp_path: Path) -> None:
    manifest = load_example("memorygraph-full.yaml")
    manifest["spec"]["tls"]["requireClientCertificate"] = True
    manifest["spec"]["archival"]["clientCertificateSecretRef"] = {"name": "archival-client"}
    args = _parsed(manifest, tmp_path)
    assert (tmp_path / "tls/ca.crt").read_text() == "agents-memory-tls/ca.crt\n"
    assert args.client_cert.read_text() == "archival-client/tls.crt\n"
    assert args.client_key.read_text() == "archival-client/tls.key\n"
    # The graph's TLS Secret gives the job its CA only.
    keys = {p.read_text().strip() for p in tmp_path.rglob("*") if p.is_file()}
    assert not {"agents-memory-tls/tls.crt", "agents-memory-tls/tls.key"} & keys
