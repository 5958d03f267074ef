"""A built wheel holds the whole package (embedded model included) and asks only for runtime deps."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_build(tmp_path_factory) -> tuple[Path, str]:
    """(the built wheel, the build's verbose output: pip shows the backend's warnings only with -v)."""
    out = tmp_path_factory.mktemp("wheel")
    # setuptools builds through ./build/lib and keeps files there from earlier builds, so a module
    # moved or deleted since would still be shipped: start from an empty build directory.
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"pip wheel failed: {done.stderr[-2000:]}")
    (path,) = out.glob("edgehisto-*.whl")
    return path, done.stdout + done.stderr


@pytest.fixture(scope="module")
def wheel(wheel_build) -> Path:
    return wheel_build[0]


def test_the_build_declares_every_data_folder_it_ships(wheel_build):
    # setuptools ships a data folder that looks like a package but warns that a future version will
    # not, unless pyproject.toml lists it under packages.
    undeclared = sorted(set(re.findall(r"Package '([\w.]+)' is absent from the `packages` configuration",
                                       wheel_build[1])))
    assert undeclared == []


def test_wheel_contains_every_stage_package_and_no_tests(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("edgehisto/__main__.py", "edgehisto/cli.py", "edgehisto/runtime/classifier.py",
                   "edgehisto/datasets/idc.py", "edgehisto/export/onnx_grad.py", "edgehisto/bench/run.py",
                   "edgehisto/kiosk/app.py", "edgehisto/kiosk/static/index.html", "edgehisto/kiosk/static/kiosk.js",
                   "edgehisto/kiosk/static/kiosk.css"):
        assert module in names, module
    assert not any(name.startswith(("tests/", "edgehisto/tests/")) for name in names)
    if (ROOT / "runtime" / "models" / "idc-default" / "manifest.json").exists():
        assert "edgehisto/runtime/models/idc-default/manifest.json" in names


def test_the_wheel_stays_under_60_mb_with_every_embedded_model(wheel):
    assert wheel.stat().st_size <= 60 * 10**6, f"{wheel.stat().st_size / 1e6:.1f} MB"


def test_wheel_ships_only_what_the_runtime_and_verify_read(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    offenders = [n for n in names if n.endswith((".keras", ".tflite", ".h5")) or "/reference/" in n
                 or Path(n).name.startswith("test_") or Path(n).name == "conftest.py"]
    assert offenders == []
    if (ROOT / "runtime" / "models" / "idc-default" / "manifest.json").exists():
        assert "edgehisto/runtime/models/idc-default/golden/expected.npz" in names


@pytest.mark.slow
def test_the_runtime_only_install_verifies_and_classifies_without_tensorflow(wheel, tmp_path, good_tile):
    """pip install the wheel alone into a fresh venv, as on a Raspberry Pi, and run the commands."""
    if not (ROOT / "runtime" / "models" / "idc-default" / "manifest.json").exists():
        pytest.skip("no embedded default model in this checkout")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    for args in (["verify"], ["classify", str(good_tile), "--format", "json"]):
        done = subprocess.run([str(venv / "bin" / "edgehisto"), *args], capture_output=True, text=True,
                              cwd=tmp_path, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run([str(python), "-c", "import tensorflow"], capture_output=True, timeout=60)
    assert done.returncode != 0, "the runtime-only install must not bring TensorFlow"
    # Commands that need an extra say which in one line and exit 2, never a traceback.
    for extra, args in (("train", ["train", "idc", str(tmp_path), "--out", str(tmp_path / "run")]),
                        ("train", ["export", str(tmp_path), "--out", str(tmp_path / "bundle")]),
                        ("kiosk", ["serve", "--port", "1"]),
                        ("scale", ["batch", str(good_tile), "--out", str(tmp_path / "out"), "--engine", "ray"])):
        done = subprocess.run([str(venv / "bin" / "edgehisto"), *args], capture_output=True, text=True,
                              cwd=tmp_path, timeout=300)
        assert done.returncode == 2 and "Traceback" not in done.stderr, (args, done.stderr)
        assert f'pip install "edgehisto[{extra}]"' in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr


def test_wheel_base_requirements_are_the_runtime_only(wheel):
    archive = zipfile.ZipFile(wheel)
    (meta,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
    requires = Parser().parsestr(archive.read(meta).decode()).get_all("Requires-Dist")
    base = sorted(r.split(">")[0].split("=")[0].split("<")[0].strip() for r in requires if "extra ==" not in r)
    assert base == ["click", "numpy", "onnxruntime", "opencv-python-headless"]
    assert any("tensorflow" in r and "extra == \"train\"" in r for r in requires)
