"""On a runtime-only install, commands that need an extra say which in one line and exit 2.

Cheap stand-in for the slow wheel-in-a-fresh-venv test in test_packaging.py: the installed
``edgehisto`` command runs with a ``sitecustomize`` that makes the extras' modules unimportable,
exactly as they are when only the runtime is installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgehisto.cli import KIOSK_EXTRA_MODULES, SCALE_EXTRA_MODULES, TRAIN_EXTRA_MODULES

EDGEHISTO = Path(sys.executable).with_name("edgehisto")

BLOCKER = '''
import importlib.abc, sys

BLOCKED = {blocked!r}


class _NotInstalled(importlib.abc.MetaPathFinder):
    """Raise what Python raises for a module that is not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
'''


@pytest.fixture(scope="module")
def runtime_only_env(tmp_path_factory) -> dict[str, str]:
    shim = tmp_path_factory.mktemp("runtime_only")
    blocked = sorted(TRAIN_EXTRA_MODULES | KIOSK_EXTRA_MODULES | SCALE_EXTRA_MODULES)
    (shim / "sitecustomize.py").write_text(BLOCKER.format(blocked=blocked))
    env = dict(os.environ, PYTHONPATH=str(shim))
    env.pop("PYTHONSTARTUP", None)
    return env


def test_the_blocker_makes_the_extras_unimportable_and_leaves_the_runtime(runtime_only_env):
    probe = "import onnxruntime, cv2, numpy, click\ntry:\n import keras\nexcept ModuleNotFoundError:\n print('blocked')"
    done = subprocess.run([sys.executable, "-c", probe], env=runtime_only_env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "blocked", done.stderr


def commands(tmp: Path, tile: Path) -> list[tuple[str, list[str]]]:
    return [
        ("train", ["train", "idc", str(tmp), "--out", str(tmp / "run")]),
        ("train", ["train", "breakhis", str(tmp), "--out", str(tmp / "run")]),
        ("train", ["export", str(tmp), "--out", str(tmp / "bundle")]),
        ("train", ["check-parity", "idc"]),
        ("train", ["evaluate", "idc", str(tmp), "--out", str(tmp / "report")]),
        ("kiosk", ["serve", "--port", "1"]),
        ("scale", ["batch", str(tile), "--out", str(tmp / "rows"), "--engine", "ray"]),
    ]


@pytest.mark.parametrize("index", range(7))
def test_a_command_that_needs_an_extra_names_it_in_one_line_and_exits_2(runtime_only_env, tmp_path, good_tile,
                                                                       index):
    extra, args = commands(tmp_path, good_tile)[index]
    done = subprocess.run([str(EDGEHISTO), *args], env=runtime_only_env, capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, (args, done.stdout, done.stderr)
    assert done.stderr.splitlines() == [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(done.stderr.splitlines()) == 1 and f'pip install "edgehisto[{extra}]"' in done.stderr, done.stderr


def test_bench_on_a_runtime_only_install_measures_the_runtime_variants(runtime_only_env, tmp_path):
    # A Raspberry Pi user has the runtime alone: bench still times ONNX fp32 and int8, cold start and
    # RSS, and says in its report what it could not run and which extra would add it.
    tiles = tmp_path / "tiles"
    made = subprocess.run([str(EDGEHISTO), "synth", "idc", "--out", str(tiles), "--n", "16", "--seed", "0"],
                          env=runtime_only_env, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    done = subprocess.run([str(EDGEHISTO), "bench", "idc", "--data", str(tiles), "--out", str(tmp_path / "bench"),
                           "--repeats", "3", "--limit", "8"], env=runtime_only_env, capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "bench" / "bench.md").read_text()
    assert "| onnx_int8 | " in report and "| classify_int8 | " in report
    assert 'keras is not installed (pip install "edgehisto[train]")' in report
    assert "The physical limit was not measured" in report
    process = json.loads((tmp_path / "bench" / "bench.json").read_text())["bundles"][0]["process"]
    assert process["classify_int8"]["exit_codes"] == [0] and process["classify_int8"]["peak_rss_mb"] > 0
