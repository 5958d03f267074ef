"""The CLI is thin: library functions report progress through a callback and never print."""

from __future__ import annotations

import ast
from pathlib import Path

import edgehisto

PACKAGE = Path(edgehisto.__file__).resolve().parent
SKIPPED = ("tests", "benchmarks", ".venv", "build", "runs", ".cache")


def library_sources() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if p.relative_to(PACKAGE).parts[0] not in SKIPPED]


def _defaults(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.expr]:
    return [d for d in (*node.args.defaults, *node.args.kw_defaults) if d is not None]


def test_no_library_function_defaults_to_print():
    offences = [f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.name}"
                for path in library_sources() for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and any(isinstance(d, ast.Name) and d.id == "print" for d in _defaults(node))]
    assert offences == []


def test_no_library_module_calls_print():
    offences = [f"{path.relative_to(PACKAGE)}:{node.lineno}"
                for path in library_sources() for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"]
    assert offences == []


def test_the_scan_sees_the_library():
    names = {p.relative_to(PACKAGE).as_posix() for p in library_sources()}
    assert {"export/exporter.py", "train/idc.py", "evaluate/evaluate_bundle.py"} <= names
