"""The archival job against a real Data-Vault HTTP server (tests/dataplane/vault_server.py)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from memorygraph.archive import bundle
from memorygraph.archive.bundle import ArchiveError, RetentionPolicy, decompress
from memorygraph.client import Client
from memorygraph.errors import NotFound
from memorygraph.server import RunningServer
from memorygraph.store import keys

from .archive_support import _vault_destination, archive_all, record_session
from .vault_server import DataVault

Start = Callable[..., RunningServer]


def test_a_session_too_large_to_restore_is_not_archived(
    inprocess_server: RunningServer, vault: DataVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Restore reads back at most MAX_EXPORT_BYTES: a larger export would be an archive that
    can never come back, so the session stays in the graph."""
    monkeypatch.setattr(bundle, "MAX_EXPORT_BYTES", 512)
    with Client(f"127.0.0.1:{inprocess_server.port}") as mg:
        session = record_session(mg, "big")
        summary = archive_all(mg, _vault_destination(vault), policy=RetentionPolicy())
        assert (summary.archived, summary.failed) == (0, 1)
        assert "could not be restored" in summary.failures[0]
        mg.get_session(session)
        assert list(_vault_destination(vault).list()) == []


def test_run_archives_old_sessions_to_the_vault_and_restore_round_trips(
    inprocess_server: RunningServer, vault: DataVault
) -> None:
    lines: list[str] = []
    with Client(f"127.0.0.1:{inprocess_server.port}") as mg:
        old = [record_session(mg, f"old-{i}") for i in range(3)]
        exports = {sid: mg.export_session(sid)[0] for sid in old}
        cutoff_now = dt.datetime.now(dt.UTC)
        young = record_session(mg, "young", close=False)
        vault.fail_next(2)  # transient trouble is retried
        destination = _vault_destination(vault)
        summary = archive_all(
            mg,
            destination,
            policy=RetentionPolicy("PCI"),
            progress=lines.append,
            batch_size=2,
            now=cutoff_now,
        )
        assert (summary.processed, summary.archived, summary.failed) == (3, 3, 0), lines
        assert vault.calls.count(("POST", "/api/v1/archive/batch")) == 2
        assert summary.bytes > 0
        mg.get_session(young)
        for sid in old:
            with pytest.raises(NotFound):
                mg.get_session(sid)
        listed = list(destination.list())
        assert sorted(m["session_id"] for m in listed) == sorted(old)
        assert all(m["compliance"] == "PCI" and m["retention_days"] == 1095 for m in listed)
        assert all(
            m["schema_version"] == keys.SCHEMA_VERSION and m["format_version"] == 1 for m in listed
        )
        retain = dt.datetime.fromisoformat(listed[0]["retain_until"])
        assert retain - dt.datetime.now(dt.UTC) > dt.timedelta(days=1094)
        # The archive holds exactly the export; restore brings those bytes back.
        for manifest in listed:
            _, data = destination.fetch(manifest["archive_id"])
            assert decompress(data, manifest) == exports[manifest["session_id"]]
            mg.restore_session(decompress(data, manifest))
            assert mg.export_session(manifest["session_id"])[0] == exports[manifest["session_id"]]
        # Restored sessions count as active from their restore: the same cutoff leaves them.
        lines.clear()
        assert (
            archive_all(mg, destination, policy=RetentionPolicy("PCI"), now=cutoff_now).processed
            == 0
        )
        # Once idle again: same state, same archive ids, no duplicates (plus the young one).
        again = archive_all(
            mg,
            destination,
            policy=RetentionPolicy("PCI"),
            progress=lines.append,
            now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1),
        )
        assert again.archived == 4
        assert len(vault.ids()) == 4
        assert sum("already uploaded" in line for line in lines) == 3
        destination.close()


def test_vault_down_fails_the_run_and_keeps_every_session(
    inprocess_server: RunningServer, vault: DataVault
) -> None:
    with Client(f"127.0.0.1:{inprocess_server.port}") as mg:
        sid = record_session(mg, "s")
        destination = _vault_destination(vault)
        vault.fail_next(100)  # every API call answers 503 (retried, then given up)
        with pytest.raises(ArchiveError, match="did not answer"):
            archive_all(mg, destination, policy=RetentionPolicy())
        mg.get_session(sid)
        assert vault.ids() == []


def test_legal_hold_prevents_deletion_until_lifted(
    inprocess_server: RunningServer, vault: DataVault
) -> None:
    with Client(f"127.0.0.1:{inprocess_server.port}") as mg:
        record_session(mg, "held")
        destination = _vault_destination(vault)
        archive_all(mg, destination, policy=RetentionPolicy("HIPAA", legal_hold=True))
        (archive_id,) = vault.ids()
        with pytest.raises(ArchiveError, match="legal hold"):
            destination.delete(archive_id)
        destination.set_legal_hold(archive_id, False)
        destination.delete(archive_id)
        assert vault.ids() == []


def test_plugin_refusing_archival_skips_the_session(
    start_inprocess: Start, vault: DataVault, tmp_path: Path
) -> None:
    plugins = tmp_path / "plugins.yaml"
    plugins.write_text(
        json.dumps(
            {
                "version": 1,
                "plugins": [
                    {
                        "name": "archivable-only",
                        "type": "validator",
                        "hooks": ["before_archive"],
                        "config": {"required_metadata": ["archivable"]},
                    }
                ],
            }
        )
    )
    server = start_inprocess(plugins_file=plugins)
    lines: list[str] = []
    with Client(f"127.0.0.1:{server.port}") as mg:
        kept = record_session(mg, "kept")
        allowed = mg.create_session(title="ok", metadata={"archivable": "yes"}).id
        mg.close_session(allowed)
        summary = archive_all(
            mg, _vault_destination(vault), policy=RetentionPolicy(), progress=lines.append
        )
        assert (summary.archived, summary.skipped, summary.failed) == (1, 1, 0), lines
        assert any("archivable-only" in line for line in lines)
        mg.get_session(kept)
        with pytest.raises(NotFound):
            mg.get_session(allowed)
    assert len(vault.ids()) == 1


def test_archive_ids_from_the_command_line_stay_one_path_segment(vault: DataVault) -> None:
    destination = _vault_destination(vault)
    with pytest.raises(ArchiveError, match="is not in the vault"):
        destination.delete("../policies")
    assert ("DELETE", "/api/v1/archive/..%2Fpolicies") in vault.calls
    destination.close()
