"""Every operator module says what it exports. (Its layers are import-linter contracts in
pyproject.toml, checked by `make lint`; `test_import_boundaries` runs them too.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from operator_support import ROOT

PACKAGE = ROOT / "operator" / "memorygraph_operator"


def _modules() -> dict[str, Path]:
    return {
        ".".join(p.relative_to(PACKAGE).with_suffix("").parts): p for p in PACKAGE.rglob("*.py")
    }


@pytest.mark.parametrize("name", sorted(n for n in _modules() if not n.endswith("__init__")))
def test_every_module_declares_its_public_names(name: str) -> None:
    tree = ast.parse(_modules()[name].read_text())
    exported = next(
        (
            n.value
            for n in tree.body
            if isinstance(n, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)
        ),
        None,
    )
    assert isinstance(exported, ast.List), f"{name} has no __all__"
    defined = {
        n.name
        for n in tree.body
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }
    defined |= {
        t.id
        for n in tree.body
        if isinstance(n, (ast.Assign, ast.AnnAssign))
        for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
        if isinstance(t, ast.Name)
    }
    defined |= {
        a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names
    }
    names = [ast.literal_eval(e) for e in exported.elts]
    assert set(names) <= defined, f"{name}.__all__ names undefined: {set(names) - defined}"
