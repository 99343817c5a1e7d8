"""The archival CronJob's command line is one the `memorygraph archive run` command accepts, with
the environment variables the archive code reads."""

from __future__ import annotations

import datetime as dt
from typing import Any

from memorygraph.archive import s3, vault
from memorygraph.archive.cli import cmd_run
from memorygraph.cli import build_parser
from memorygraph_operator.reconcile.inputs import parse_graph
from memorygraph_operator.render import RenderEnv, render_children
from operator_support import load_example


def _job_container(manifest: dict[str, Any]) -> dict[str, Any]:
    manifest["metadata"].setdefault("uid", "0b5c3f0e-3b1a-4c5e-9a51-000000000001")
    children = render_children(parse_graph(manifest), RenderEnv())
    (cronjob,) = [c.body for c in children if c.kind == "CronJob" and c.body is not None]
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return dict(container)


def test_vault_archival_job_parses_as_archive_run() -> None:
    container = _job_container(load_example("memorygraph-full.yaml"))
    assert container["command"] == ["memorygraph"]
    args = build_parser().parse_args(container["args"])
    assert args.func is cmd_run
    assert args.server == "agents-memory.apps.svc:50051"
    assert args.older_than == dt.timedelta(hours=2160)
    assert args.compliance == "GDPR"
    assert args.vault_url and not args.s3_bucket
    env = {e["name"] for e in container["env"]}
    assert vault.TOKEN_ENV in env
    assert "MEMORYGRAPH_API_KEY" in env  # generated keys: the job authenticates


def test_s3_archival_job_parses_as_archive_run() -> None:
    manifest = load_example("memorygraph-minimal.yaml")
    manifest["spec"]["archival"] = {
        "olderThan": "1h30m",
        "compliance": "PCI",
        "destination": {
            "s3": {"bucket": "archives", "prefix": "prod", "secretRef": {"name": "s3-creds"}}
        },
    }
    container = _job_container(manifest)
    args = build_parser().parse_args(container["args"])
    assert args.func is cmd_run
    assert (args.s3_bucket, args.s3_prefix, args.vault_url) == ("archives", "prod", None)
    assert args.older_than == dt.timedelta(minutes=90)
    env = {e["name"] for e in container["env"]}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", s3.ENDPOINT_ENV} <= env
