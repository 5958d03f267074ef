"""A built wheel holds the whole package (embedded model included) and asks only for runtime deps."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"pip wheel failed: {done.stderr[-2000:]}")
    (path,) = out.glob("edgehisto-*.whl")
    return path


def test_wheel_contains_every_stage_package_and_no_tests(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("edgehisto/__main__.py", "edgehisto/cli.py", "edgehisto/runtime/classifier.py",
                   "edgehisto/data/datasets/idc.py", "edgehisto/export/onnx_grad.py", "edgehisto/bench/run.py"):
        assert module in names, module
    assert not any(name.startswith(("tests/", "edgehisto/tests/")) for name in names)
    if (ROOT / "runtime" / "models" / "idc-default" / "manifest.json").exists():
        assert "edgehisto/runtime/models/idc-default/manifest.json" in names


def test_wheel_base_requirements_are_the_runtime_only(wheel):
    archive = zipfile.ZipFile(wheel)
    (meta,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
    requires = Parser().parsestr(archive.read(meta).decode()).get_all("Requires-Dist")
    base = sorted(r.split(">")[0].split("=")[0].split("<")[0].strip() for r in requires if "extra ==" not in r)
    assert base == ["click", "numpy", "onnxruntime", "opencv-python-headless"]
    assert any("tensorflow" in r and "extra == \"train\"" in r for r in requires)
