"""`memorygraph archive` as a command: killed at every step and rerun, and its option errors."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from memorygraph.archive.cli import parse_duration
from memorygraph.client import Client
from memorygraph.errors import NotFound

from .archive_support import TOKEN, _vault_destination, record_session
from .conftest import REPO, ServerProcess
from .vault_server import DataVault


def _archive_cmd(server: ServerProcess, vault: DataVault, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "memorygraph",
        "archive",
        "run",
        "--server",
        server.address,
        "--older-than",
        "0s",
        "--vault-url",
        vault.url,
        *extra,
    ]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO / "dataplane"),
        "MEMORYGRAPH_VAULT_TOKEN": TOKEN,
    }


@pytest.mark.slow
@pytest.mark.parametrize("step", ["exported", "uploaded", "verified", "deleting from the graph"])
def test_kill_at_each_step_then_rerun_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, vault: DataVault, step: str
) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        with Client(server.address) as mg:
            sessions = [record_session(mg, f"s{i}") for i in range(3)]
            exports = {sid: mg.export_session(sid)[0] for sid in sessions}
        # Kill the job at the step, in the middle of the second session.
        proc = subprocess.Popen(
            _archive_cmd(server, vault), stdout=subprocess.PIPE, env=_env(), text=True
        )
        assert proc.stdout is not None
        seen = 0
        for line in proc.stdout:
            if f": {step}" in line:
                seen += 1
                if seen == 2:
                    proc.send_signal(signal.SIGKILL)
                    break
        proc.wait(timeout=30)
        assert seen == 2

        def check_either_or() -> None:
            with Client(server.address) as mg:
                archived = {
                    json.loads(p.read_text())["session_id"] for p in vault.root.glob("*.json")
                }
                for sid in sessions:
                    try:
                        mg.get_session(sid)
                        in_graph = True
                    except NotFound:
                        in_graph = False
                    assert in_graph or sid in archived, (
                        f"{sid} is neither in the graph nor archived"
                    )

        check_either_or()
        rerun = subprocess.run(
            _archive_cmd(server, vault), capture_output=True, env=_env(), text=True, timeout=120
        )
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert "0 failed" in rerun.stdout
        check_either_or()
        destination = _vault_destination(vault)
        manifests = list(destination.list())
        assert sorted(m["session_id"] for m in manifests) == sorted(sessions)  # one each
        with Client(server.address) as mg:
            for sid in sessions:
                with pytest.raises(NotFound):
                    mg.get_session(sid)
            for manifest in manifests:
                restored = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "memorygraph",
                        "archive",
                        "restore",
                        "--server",
                        server.address,
                        "--vault-url",
                        vault.url,
                        manifest["archive_id"],
                    ],
                    capture_output=True,
                    env=_env(),
                    text=True,
                    timeout=60,
                )
                assert restored.returncode == 0, restored.stderr
                sid = manifest["session_id"]
                assert mg.export_session(sid)[0] == exports[sid]
        destination.close()
    finally:
        server.stop()


def test_command_line_errors_are_precise(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "memorygraph", "archive", *args],
            capture_output=True,
            env=_env(),
            text=True,
            timeout=60,
        )

    bad_duration = run("run", "--older-than", "30 days", "--vault-url", "http://127.0.0.1:1")
    assert bad_duration.returncode == 2 and "not a duration" in bad_duration.stderr
    no_destination = run("list")
    assert no_destination.returncode == 2  # a bad option, as documented
    assert "exactly one destination" in no_destination.stderr
    assert "Traceback" not in no_destination.stderr
    for option, value in [("--retention-days", "0"), ("--limit", "-1"), ("--batch-size", "0")]:
        bad = run("run", "--older-than", "1h", "--vault-url", "http://127.0.0.1:1", option, value)
        assert bad.returncode == 2 and option in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr
    missing = tmp_path / "missing"
    no_token = run("list", "--vault-url", "http://127.0.0.1:1", "--vault-token-file", str(missing))
    assert no_token.returncode == 2 and f"cannot read {missing}" in no_token.stderr
    empty = tmp_path / "empty"
    empty.write_text("\n")
    no_key = run("run", "--older-than", "1h", "--vault-url", "x", "--api-key-file", str(empty))
    assert no_key.returncode == 2 and f"{empty} is empty" in no_key.stderr
    assert parse_duration("1h30m") == dt.timedelta(minutes=90)
    assert parse_duration("30d") == dt.timedelta(days=30)
