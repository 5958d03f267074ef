"""The house keeps its design: one-way doors between rooms, and no machine paths committed."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

from edgehisto.rooms import ROOMS  # noqa: E402  (the one source of the doors; the README's table follows it)

ALLOWED = {room: set(doors) for room, (doors, _) in ROOMS.items()}


def project_imports(path: Path) -> set[str]:
    """Every ``edgehisto.<...>`` module a file imports, at any depth (lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edgehisto."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("edgehisto.")}
    return found


def room_of(module: str) -> str:
    return module.split(".")[1]


def crossing_imports() -> list[tuple[str, str]]:
    """(file, module) pairs that import a room the file's room may not import."""
    bad = []
    for room, allowed in ALLOWED.items():
        files = [ROOT / f"{room}.py"] if (ROOT / f"{room}.py").is_file() else sorted((ROOT / room).rglob("*.py"))
        for path in files:
            for module in project_imports(path):
                target = room_of(module)
                if target == room or target not in ALLOWED:
                    continue
                if target in allowed or any(module == a or module.startswith(a + ".") for a in
                                            {f"edgehisto.{x}" for x in allowed}):
                    continue
                bad.append((str(path.relative_to(ROOT)), module))
    return bad


def test_rooms_import_only_through_their_one_way_doors():
    assert crossing_imports() == []


def test_the_bundle_room_imports_nothing_of_the_project_but_errors():
    for path in (ROOT / "bundle").rglob("*.py"):
        assert {room_of(m) for m in project_imports(path)} <= {"bundle", "errors"}, path


ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:home|root|tmp|work|Users|mnt|opt|var)/[\w.-]+")


def test_no_committed_file_holds_a_machine_path():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    offenders = []
    for name in tracked.stdout.splitlines():
        path = ROOT / name
        if path.suffix in (".png", ".onnx", ".tflite", ".keras", ".npz", ".npy") or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        offenders += [f"{name}: {m.group(0)}" for m in ABSOLUTE_PATH.finditer(text)]
    assert offenders == []


def test_the_readme_room_table_states_the_doors_of_rooms_py():
    table = {}
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`") and cells[0].endswith("`"):
            table[cells[0].strip("`")] = {d.strip() for d in cells[2].split(",") if d.strip()}
    expected = {room: set(doors) for room, (doors, _) in ROOMS.items() if room != "errors"}
    assert table == expected


# -- one home per fact: the manifest is read through bundle/, run.json through RunInfo -----------------
MANIFEST_CODE = re.compile(r"manifest\[|manifest\.get\(")
MANIFEST_FILE = re.compile(r"^[\w./-]*manifest\.json$")
RUN_JSON_FILE = re.compile(r"^[\w./-]*run\.json$")
RUN_INFO_MODULE = "datasets/run_info.py"


def _is_manifest(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "manifest") or (
        isinstance(node, ast.Attribute) and node.attr == "manifest")


def _reads_manifest(node: ast.AST) -> bool:
    """``<x>.manifest``, ``manifest[...]`` or ``manifest.get(...)``: a manifest read as a dict.

    Assigning ``manifest[key] = ...`` builds a manifest (export) and is no read.
    """
    if isinstance(node, (ast.Attribute, ast.Subscript)) and not isinstance(node.ctx, ast.Load):
        return False
    if isinstance(node, ast.Attribute):
        return node.attr == "manifest"
    if isinstance(node, ast.Subscript):
        return _is_manifest(node.value)
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
            and _is_manifest(node.func.value))


def raw_reads(source: str) -> dict[str, list[int]]:
    """Lines that read a bundle manifest as a dict or name a manifest.json / run.json file.

    Code in strings counts too (a script run in a subprocess).
    """
    found: dict[str, set[int]] = {"manifest": set(), "run.json": set()}
    for node in ast.walk(ast.parse(source)):
        text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""
        if _reads_manifest(node) or MANIFEST_CODE.search(text) or MANIFEST_FILE.match(text):
            found["manifest"].add(node.lineno)
        if RUN_JSON_FILE.match(text):
            found["run.json"].add(node.lineno)
    return {kind: sorted(lines) for kind, lines in found.items()}


def project_sources() -> list[Path]:
    """Every Python file of the project but its tests."""
    return sorted(p for p in ROOT.rglob("*.py") if not {"tests", "build", "dist"} & set(p.relative_to(ROOT).parts)
                  and not any(part.startswith(".") for part in p.relative_to(ROOT).parts))


def test_the_raw_read_finder_sees_every_kind_of_raw_read():
    source = '''
import json
a = bundle.manifest
b = manifest["task"]
c = manifest.get("name", "x")
d = json.loads((bundle_dir / "manifest.json").read_text())
SCRIPT = "stage = bundle.manifest['stages']"
e = json.loads((run_dir / "run.json").read_text())
manifest["files"] = {}
'''
    assert raw_reads(source) == {"manifest": [3, 4, 5, 6, 7], "run.json": [8]}


def test_code_outside_the_bundle_room_reads_the_manifest_only_through_typed_accessors():
    offenders = [f"{path.relative_to(ROOT)}:{line}" for path in project_sources()
                 if path.relative_to(ROOT).parts[0] != "bundle"
                 for line in raw_reads(path.read_text(encoding="utf-8"))["manifest"]]
    assert offenders == []


def test_only_run_info_opens_a_run_directory_run_json():
    offenders = [f"{path.relative_to(ROOT)}:{line}" for path in project_sources()
                 if path.relative_to(ROOT).as_posix() != RUN_INFO_MODULE
                 for line in raw_reads(path.read_text(encoding="utf-8"))["run.json"]]
    assert offenders == []
