"""The operator's layers, enforced on the import graph (what import-linter contracts would say).

- ``api``: models only; never renders, reconciles or talks to the API.
- ``render`` and the pure parts of ``reconcile`` (inputs, status): no I/O, no clock, no process
  environment, no kopf, no API client.
- ``kube``: the only module importing an HTTP client.
- ``handlers`` (plus ``settings`` and ``__main__``): the only modules importing kopf.
"""

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


def _imports(path: Path) -> set[str]:
    """Absolute names imported by a module, relative imports resolved inside the package."""
    module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    package = module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(["memorygraph_operator", *base, *(node.module or "").split(".")])
                names.add(target.rstrip("."))
            else:
                names.add(node.module or "")
    return names


def _violations(prefixes: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for name, path in _modules().items():
        if not name.startswith(prefixes):
            continue
        for imported in _imports(path):
            if imported.startswith(forbidden) or any(imported == f.rstrip(".") for f in forbidden):
                found.append(f"{name} imports {imported}")
    return found


IMPURE = (
    "kopf",
    "aiohttp",
    "kubernetes",
    "os",
    "time",
    "datetime",
    "random",
    "secrets",
    "subprocess",
    "socket",
    "memorygraph_operator.kube",
    "memorygraph_operator.handlers",
    "memorygraph_operator.reconcile.memorygraph",
)


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        (
            ("api",),
            (
                "memorygraph_operator.render",
                "memorygraph_operator.reconcile",
                "memorygraph_operator.kube",
                "memorygraph_operator.handlers",
                "kopf",
                "aiohttp",
            ),
        ),
        (("render",), (*IMPURE, "memorygraph_operator.reconcile")),
        (("reconcile.inputs", "reconcile.status"), IMPURE),
    ],
    ids=["api", "render", "pure-reconcile"],
)
def test_layer_does_not_import(layer: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    assert _violations(layer, forbidden) == []


def test_only_kube_imports_an_http_client() -> None:
    users = {n for n, p in _modules().items() if any(i.startswith("aiohttp") for i in _imports(p))}
    assert users == {"kube"}


def test_only_the_process_modules_import_kopf() -> None:
    users = {n for n, p in _modules().items() if any(i.startswith("kopf") for i in _imports(p))}
    assert users <= {"handlers", "settings", "__main__"}


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
