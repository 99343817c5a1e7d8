"""The checked-in protobuf bindings and gRPC reference are exactly what proto/ generates."""

from __future__ import annotations

import subprocess
import sys

from .conftest import REPO


def test_generated_protobuf_files_are_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "hack" / "generate_proto.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
