"""The import boundaries of both packages hold: the layer contracts in pyproject.toml, and what
importing the operator or the client package loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _loaded_by(statement: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running `statement`."""
    probe = f"{statement}\nimport sys\nprint(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(out.stdout.split())


def test_the_layer_contracts_are_kept() -> None:
    linter = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(linter)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "0 broken" in result.stdout


def test_importing_the_operator_loads_no_grpc_nor_other_data_plane_modules() -> None:
    # The pods' peer API (shard moves) loads gRPC on its first call only.
    loaded = _loaded_by(
        "import memorygraph_operator.handlers, memorygraph_operator.__main__\n"
        "from memorygraph_operator.peers import GrpcPeers\n"
        "GrpcPeers()"
    )
    assert "grpc" not in loaded
    assert {m for m in loaded if m.startswith("memorygraph.")} <= {
        "memorygraph.errors",
        "memorygraph.plugins",
        "memorygraph.plugins.schema",
    }


def test_importing_the_package_loads_the_client_only_when_used() -> None:
    assert "grpc" not in _loaded_by("import memorygraph")
    assert "grpc" in _loaded_by("from memorygraph import Client")
