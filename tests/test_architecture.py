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
