"""Every documented exit code, from the real installed command in a real process.

``CliRunner`` drives the click group directly and never passes through ``edgehisto.cli.main``,
which is where the process's exit status is decided; a bug there (click returning, not raising,
``Exit`` under ``standalone_mode=False``) once made every failing gate exit 0. So these tests
run the console script that ``pip install`` put beside the interpreter, and ``python -m edgehisto``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PARITY_LIMIT

from edgehisto.runtime.registry import DEFAULT_MODEL, embedded_bundles

CONSOLE_SCRIPT = Path(sys.executable).with_name("edgehisto")
ENTRY_POINTS = {"console script": [str(CONSOLE_SCRIPT)], "python -m": [sys.executable, "-m", "edgehisto"]}


def run(entry: str, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    """Run edgehisto in a fresh process, the way a shell or a CI job would."""
    assert CONSOLE_SCRIPT.is_file(), f"the console script is not installed beside {sys.executable}"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([*ENTRY_POINTS[entry], *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=env)


def assert_one_line_error(done: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip(), "a failing command must say why on stderr"


@pytest.fixture
def tampered_bundle(tmp_path: Path) -> Path:
    """A copy of the embedded default bundle with one byte of its int8 backbone changed."""
    copy = tmp_path / "tampered"
    shutil.copytree(embedded_bundles()[DEFAULT_MODEL], copy)
    target = copy / "idc" / "backbone.int8.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    return copy


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_classify_exits_0_when_every_tile_is_classified(entry, tmp_path, good_tile):
    done = run(entry, "classify", good_tile, "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["label"]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_classify_exits_1_when_an_input_fails(entry, tmp_path, good_tile, bad_tiles):
    done = run(entry, "classify", good_tile, bad_tiles["zero_byte"], "--format", "json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    records = json.loads(done.stdout)
    assert "label" in records[0] and "error" in records[1]
    assert_one_line_error(done)


@pytest.mark.parametrize("args", [["classify"], ["classify", "x.png", "--precision", "int4"],
                                  ["classify", "x.png", "--no-such-option"], ["no-such-command"]])
def test_usage_errors_exit_2(args, tmp_path):
    done = run("console script", *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert_one_line_error(done)


def test_help_and_version_exit_0(tmp_path):
    for args in (["--help"], ["--version"], ["classify", "--help"]):
        done = run("console script", *args, cwd=tmp_path)
        assert done.returncode == 0, (args, done.stderr)
        assert done.stdout.strip()


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_tampered_bundle_exits_2(entry, tmp_path, tampered_bundle, good_tile):
    done = run(entry, "classify", good_tile, "--model", tampered_bundle, cwd=tmp_path)
    assert done.returncode == 2
    assert "sha256" in done.stderr
    assert_one_line_error(done)


def test_a_missing_bundle_or_unknown_schema_exits_2(tmp_path, good_tile):
    done = run("console script", "classify", good_tile, "--model", tmp_path / "nowhere", cwd=tmp_path)
    assert done.returncode == 2 and "no bundle" in done.stderr
    future = tmp_path / "future"
    shutil.copytree(embedded_bundles()[DEFAULT_MODEL], future)
    manifest = json.loads((future / "manifest.json").read_text())
    (future / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 99}))
    done = run("console script", "classify", good_tile, "--model", future, cwd=tmp_path)
    assert done.returncode == 2 and "schema_version" in done.stderr
    assert_one_line_error(done)


@pytest.mark.slow
def test_check_parity_exits_0_when_gates_pass_and_1_when_one_fails(tmp_path, idc_bundle, synth_idc_dir):
    pytest.importorskip("tensorflow")
    base = ["check-parity", idc_bundle, "--data", synth_idc_dir, "--limit", str(PARITY_LIMIT), "--gradcam-limit", "4"]
    # The bundle's gates ran at export; on the same (every held-out) tiles they still pass unless a threshold is
    # impossible: an accuracy drop can never be below -1.
    if json.loads((idc_bundle / "manifest.json").read_text())["parity"]["passed"]:
        done = run("console script", *base, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    done = run("console script", *base, "--max-accuracy-drop", "-1.5", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "PARITY FAILED" in done.stdout


@pytest.mark.slow
def test_export_that_fails_its_gates_exits_1(tmp_path, idc_run):
    pytest.importorskip("tensorflow")
    done = run("console script", "export", idc_run, "--out", tmp_path / "bundle", "--no-tflite",
               "--calibration-images", "16", "--max-accuracy-drop", "-1.5", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "EXPORT FAILED ITS PARITY GATES" in done.stderr
    assert json.loads((tmp_path / "bundle" / "manifest.json").read_text())["parity"]["passed"] is False


def test_export_refuses_an_operator_it_cannot_quantise_portably_in_one_line(tmp_path):
    done = run("console script", "export", tmp_path, "--out", tmp_path / "bundle", "--quantize-ops", "Conv,Mul",
               cwd=tmp_path)
    assert done.returncode == 2
    assert "--quantize-ops" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "bundle").exists()
