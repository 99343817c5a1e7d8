"""Helpers of the operator tests: golden files and example manifests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from memorygraph_operator.api.base import API_VERSION

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
GOLDEN = Path(__file__).parent / "golden"

# The fake API server's collections of the two kinds.
GRAPHS = f"{API_VERSION}/memorygraphs"
PLUGINS = f"{API_VERSION}/plugins"

# The one command that rewrites every golden file: UPDATE_GOLDEN=1 pytest tests/operator
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def load_example(name: str) -> dict[str, Any]:
    """One manifest from docs/examples."""
    data = yaml.safe_load((EXAMPLES / name).read_text())
    assert isinstance(data, dict)
    return data


class _GoldenDumper(yaml.SafeDumper):
    """Readable goldens: block scalars for multi-line strings, no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_GoldenDumper.add_representer(str, _str)


def dump_golden(obj: Any) -> str:
    """The text a golden file holds for ``obj``."""
    return yaml.dump(obj, Dumper=_GoldenDumper, sort_keys=False, width=100)


class Golden:
    """Compares rendered objects with files under tests/operator/golden (or rewrites them)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.seen: set[str] = set()

    def check(self, name: str, obj: Any) -> None:
        path = self.directory / name
        self.seen.add(name)
        text = dump_golden(obj)
        if UPDATE:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return
        assert path.exists(), f"{path} is missing: run UPDATE_GOLDEN=1 pytest tests/operator"
        assert yaml.safe_load(path.read_text()) == obj, (
            f"{path} differs from the rendered object; review, then run "
            "UPDATE_GOLDEN=1 pytest tests/operator"
        )

    def check_no_extra_files(self) -> None:
        """Objects that are no longer rendered must not keep a golden file around."""
        existing = (
            {p.name for p in self.directory.glob("*.yaml")} if self.directory.exists() else set()
        )
        extra = existing - self.seen
        if UPDATE:
            for name in extra:
                (self.directory / name).unlink()
            return
        assert not extra, f"golden files for objects no longer rendered: {sorted(extra)}"
