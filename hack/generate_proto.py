"""Regenerate everything that is derived from proto/: Python bindings and docs/reference/grpc.md.

    python hack/generate_proto.py           # write the files
    python hack/generate_proto.py --check   # exit 1 when a checked-in file is stale

The generator is pinned (grpcio-tools in pyproject's dev extras) so a regeneration never rewrites
bindings just because a different protoc was at hand.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.resources
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PY_OUT = ROOT / "dataplane"
DOC_OUT = ROOT / "docs" / "reference" / "grpc.md"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def run_protoc(out_dir: Path, descriptor_set: Path) -> None:
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        "--include_source_info",
        f"--descriptor_set_out={descriptor_set}",
        *[str(p.relative_to(PROTO_ROOT)) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def _comment(locations: dict[tuple[int, ...], str], path: tuple[int, ...]) -> str:
    return " ".join(locations.get(path, "").split())


def render_reference(fds: descriptor_pb2.FileDescriptorSet) -> str:
    """Markdown reference of every service, message and enum, with the .proto comments."""
    lines = [
        "# gRPC API reference",
        "",
        "Generated from `proto/` by `make generate`; do not edit.",
        "",
    ]
    for file in fds.file:
        if not file.name.startswith("memorygraph/"):
            continue
        locations = {
            tuple(loc.path): (loc.leading_comments or loc.trailing_comments).strip()
            for loc in file.source_code_info.location
        }
        lines += [f"## `{file.name}` (package `{file.package}`)", ""]
        for si, service in enumerate(file.service):
            lines += [f"### service `{service.name}`", "", _comment(locations, (6, si)), ""]
            lines += ["| RPC | request | response | notes |", "|---|---|---|---|"]
            for mi, method in enumerate(service.method):
                req = ("stream " if method.client_streaming else "") + method.input_type.lstrip(".")
                resp = ("stream " if method.server_streaming else "") + method.output_type.lstrip(
                    "."
                )
                note = _comment(locations, (6, si, 2, mi))
                lines.append(f"| `{method.name}` | `{req}` | `{resp}` | {note} |")
            lines.append("")
        for mi, message in enumerate(file.message_type):
            lines += _render_message(message, (4, mi), locations, message.name)
        for ei, enum in enumerate(file.enum_type):
            lines += _render_enum(enum, (5, ei), locations, enum.name)
    return "\n".join(lines).rstrip() + "\n"


_TYPE_NAMES = {
    value: name.removeprefix("TYPE_").lower()
    for name, value in descriptor_pb2.FieldDescriptorProto.Type.items()
}


def _render_message(
    message: descriptor_pb2.DescriptorProto,
    path: tuple[int, ...],
    locations: dict[tuple[int, ...], str],
    qualified: str,
) -> list[str]:
    if message.options.map_entry:
        return []
    out = [f"### message `{qualified}`", ""]
    if doc := _comment(locations, path):
        out += [doc, ""]
    if message.field:
        out += ["| field | number | type | notes |", "|---|---|---|---|"]
        for fi, field in enumerate(message.field):
            type_name = field.type_name.lstrip(".") or _TYPE_NAMES[field.type]
            if field.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED:
                type_name = f"repeated {type_name}"
            note = _comment(locations, (*path, 2, fi))
            out.append(f"| `{field.name}` | {field.number} | `{type_name}` | {note} |")
    out.append("")
    for ni, nested in enumerate(message.nested_type):
        out += _render_message(nested, (*path, 3, ni), locations, f"{qualified}.{nested.name}")
    for ei, enum in enumerate(message.enum_type):
        out += _render_enum(enum, (*path, 4, ei), locations, f"{qualified}.{enum.name}")
    return out


def _render_enum(
    enum: descriptor_pb2.EnumDescriptorProto,
    path: tuple[int, ...],
    locations: dict[tuple[int, ...], str],
    qualified: str,
) -> list[str]:
    out = [f"### enum `{qualified}`", ""]
    if doc := _comment(locations, path):
        out += [doc, ""]
    out += ["| value | number | notes |", "|---|---|---|"]
    for vi, value in enumerate(enum.value):
        out.append(f"| `{value.name}` | {value.number} | {_comment(locations, (*path, 2, vi))} |")
    return [*out, ""]


def generate(out_root: Path) -> dict[Path, str]:
    """Generate into a scratch directory and return {path relative to ROOT: text}."""
    py_dir = out_root / "py"
    py_dir.mkdir(parents=True)
    descriptor_set = out_root / "descriptors.pb"
    run_protoc(py_dir, descriptor_set)
    files: dict[Path, str] = {}
    for path in sorted(py_dir.rglob("*")):
        if path.is_file() and path.name.endswith(GENERATED_SUFFIXES):
            files[(PY_OUT / path.relative_to(py_dir)).relative_to(ROOT)] = path.read_text()
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    files[DOC_OUT.relative_to(ROOT)] = render_reference(fds)
    return files


def checked_in() -> dict[Path, str]:
    found = {
        path.relative_to(ROOT): path.read_text()
        for path in (PY_OUT / "memorygraph").rglob("*")
        if path.is_file() and path.name.endswith(GENERATED_SUFFIXES)
    }
    if DOC_OUT.exists():
        found[DOC_OUT.relative_to(ROOT)] = DOC_OUT.read_text()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when generated files are stale")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        fresh = generate(Path(scratch))
    current = checked_in()
    if args.check:
        stale = sorted(p for p in fresh.keys() | current.keys() if fresh.get(p) != current.get(p))
        for path in stale:
            print(f"stale: {path}", file=sys.stderr)
            diff = difflib.unified_diff(
                current.get(path, "").splitlines(),
                fresh.get(path, "").splitlines(),
                f"{path} (checked in)",
                f"{path} (generated)",
                lineterm="",
                n=1,
            )
            print("\n".join(list(diff)[:20]), file=sys.stderr)
        if stale:
            print("run `make generate` and commit the result", file=sys.stderr)
            return 1
        print(f"{len(fresh)} generated files are up to date")
        return 0
    for path in current.keys() - fresh.keys():
        (ROOT / path).unlink()
    for path, text in fresh.items():
        (ROOT / path).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / path).write_text(text)
    print(f"wrote {len(fresh)} generated files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
