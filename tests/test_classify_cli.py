"""``edgehisto classify`` end to end on the exported IDC bundle.

Runs that finish (exit 0 or 1) go through ``CliRunner`` on the click group. Bundle and usage
errors exit 2 only through ``edgehisto.cli.main``, the installed entry point, so those tests
call ``main`` and read the ``SystemExit`` code and captured stderr.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner, Result

from edgehisto.bundle.manifest import load_bundle
from edgehisto.bundle.preprocess import load_resized, normalize
from edgehisto.cli import cli, main
from edgehisto.runtime.classifier import Classifier

pytest.importorskip("tensorflow")  # the idc_bundle fixture trains and exports a model

# Same bundle, same onnxruntime graphs: only the batch composition differs between the CLI and
# the library call. The tolerance is relative to the map's peak, because a briefly trained
# model's maps peak around 1e-5, where a plain atol of 1e-5 would accept an all-zero map.
GRADCAM_RELATIVE_ATOL = 1e-5


@pytest.fixture
def good_dir(tmp_path: Path, good_tile: Path) -> Path:
    """A folder of valid tiles: the 50x50 ``good_tile``, an undersized edge patch and a larger one."""
    folder = tmp_path / "good"
    folder.mkdir()
    shutil.copy(good_tile, folder / "tile_a.png")
    rng = np.random.default_rng(2)
    for name, shape in (("tile_b.png", (50, 50, 3)), ("edge_c.png", (35, 50, 3)), ("big_d.png", (64, 60, 3))):
        assert cv2.imwrite(str(folder / name), rng.integers(0, 256, shape, dtype=np.uint8))
    return folder


@pytest.fixture(scope="module")
def stage(idc_bundle):
    bundle = load_bundle(idc_bundle)
    return bundle.stages[bundle.entry_stage]


def _tiles(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def _classify(*args: str) -> Result:
    result = CliRunner().invoke(cli, ["classify", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result


def _records(result: Result) -> dict[str, dict]:
    return {record["path"]: record for record in json.loads(result.stdout)}


def _assert_classified(record: dict, class_names: tuple[str, ...]) -> None:
    assert "error" not in record, record
    assert record["label"] in class_names
    assert list(record["probabilities"]) == list(class_names)
    assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert record["label"] == max(record["probabilities"], key=record["probabilities"].get)


def test_classifying_a_directory_prints_a_json_record_per_tile_and_exits_0(idc_bundle, good_dir, stage):
    result = _classify(str(good_dir), "--model", str(idc_bundle), "--format", "json")
    assert result.exit_code == 0, result.output
    records = _records(result)
    assert set(records) == {str(p) for p in _tiles(good_dir)}
    for record in records.values():
        _assert_classified(record, stage.class_names)


def test_csv_output_parses_with_the_csv_module(idc_bundle, good_dir, stage):
    result = _classify(str(good_dir), "--model", str(idc_bundle), "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["path"] for row in rows] == [str(p) for p in _tiles(good_dir)]
    for row in rows:
        assert row["label"] in stage.class_names
        assert sum(float(row[f"p_{name}"]) for name in stage.class_names) == pytest.approx(1.0, abs=1e-5)


def test_table_output_has_a_header_and_one_line_per_tile(idc_bundle, good_dir):
    result = _classify(str(good_dir), "--model", str(idc_bundle))
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["path", "label", "confidence"]
    assert [line.split()[0] for line in lines] == [str(p) for p in _tiles(good_dir)]


def test_bad_tiles_fail_with_one_line_errors_while_good_tiles_are_still_classified(
        idc_bundle, good_dir, bad_tiles, stage):
    result = _classify(*map(str, bad_tiles.values()), str(good_dir), "--model", str(idc_bundle),
                       "--format", "json")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    records = _records(result)
    for case, path in bad_tiles.items():
        error = records[str(path)].get("error")
        assert error and "\n" not in error and "label" not in records[str(path)], case
    for path in _tiles(good_dir):
        _assert_classified(records[str(path)], stage.class_names)
    assert f"{len(bad_tiles)} of {len(records)} inputs failed" in result.stderr


def test_a_nonexistent_path_becomes_an_error_record_and_exit_1(idc_bundle, good_tile, tmp_path):
    missing = tmp_path / "no_such_tile.png"
    result = _classify(str(good_tile), str(missing), "--model", str(idc_bundle), "--format", "json")
    assert result.exit_code == 1
    records = _records(result)
    assert records[str(missing)] == {"path": str(missing), "error": "no such file or directory"}
    assert "label" in records[str(good_tile)]


def test_gradcam_writes_an_overlay_and_a_raw_map_for_every_good_tile(
        idc_bundle, good_dir, bad_tiles, stage, tmp_path):
    cams = tmp_path / "cams"
    result = _classify(str(good_dir), str(bad_tiles["rgba"]), "--model", str(idc_bundle), "--gradcam", str(cams),
                       "--format", "json")
    assert result.exit_code == 1  # the RGBA tile fails; every good tile still gets its maps
    records = _records(result)
    manifest_stage = load_bundle(idc_bundle).manifest["stages"][stage.name]
    input_height, input_width = load_bundle(idc_bundle).preprocess.input_size
    for tile in _tiles(good_dir):
        raw, picture = records[str(tile)]["gradcam_files"]
        assert picture.endswith(f".{stage.name}.gradcam.png") and raw == picture[:-len("png")] + "npy"
        panel = cv2.imread(picture)  # title, tile and overlay side by side at >= 256 px, colour bar
        assert panel is not None and panel.shape[0] > max(256, input_height) and panel.shape[1] > 2 * 256
        model_input = load_resized(tile, load_bundle(idc_bundle).preprocess)
        side = max(256, input_height, input_width)
        shown = cv2.resize(model_input, (side * input_width // max(input_height, input_width),
                                         side * input_height // max(input_height, input_width)),
                           interpolation=cv2.INTER_NEAREST)
        top = panel.shape[0] - 10 - shown.shape[0]  # the tile sits above a 10 px margin, 10 px from the left
        drawn = cv2.cvtColor(panel[top:top + shown.shape[0], 10:10 + shown.shape[1]], cv2.COLOR_BGR2RGB)
        assert np.array_equal(drawn, shown)
        cam = np.load(raw)
        assert cam.dtype == np.float32
        assert cam.shape == tuple(manifest_stage["activations_shape"][:2])
        assert np.isfinite(cam).all() and cam.min() >= 0
    assert len(list(cams.iterdir())) == 2 * len(_tiles(good_dir))


def test_gradcam_npy_equals_the_library_gradcam_of_that_tile(idc_bundle, good_dir, synth_idc_dir, stage, tmp_path):
    # On the noise tiles the IDC-evidence map can be zero everywhere (which is then right, but compares
    # nothing): 48 synthetic positives join them so that some maps hold evidence. The fixture model is
    # checked to have learned the synthetic set when it is built (tests/conftest.py).
    positives = sorted(t for t in synth_idc_dir.glob("*/1/*.png") if not t.stem.endswith("_mask"))
    assert len(positives) >= 48
    for tile in positives[:48]:
        shutil.copy(tile, good_dir / tile.name)
    cams = tmp_path / "cams"
    result = _classify(str(good_dir), "--model", str(idc_bundle), "--gradcam", str(cams), "--format", "json")
    assert result.exit_code == 0
    records = _records(result)
    classifier = Classifier(idc_bundle)
    peaks = []
    for tile in _tiles(good_dir):
        x = normalize(load_resized(tile, classifier.spec), classifier.spec)[None]
        expected = classifier.gradcam(x, stage.name)[0]
        written = np.load(records[str(tile)]["gradcam_files"][0])
        np.testing.assert_allclose(written, expected, rtol=0, atol=GRADCAM_RELATIVE_ATOL * expected.max())
        peaks.append(expected.max())
    assert max(peaks) > 0, "all-zero maps cannot show that the two agree"


def test_int8_precision_classifies_every_tile(idc_bundle, good_dir, stage):
    result = _classify(str(good_dir), "--model", str(idc_bundle), "--precision", "int8", "--format", "json")
    assert result.exit_code == 0, result.output
    records = _records(result)
    assert len(records) == len(_tiles(good_dir))
    for record in records.values():
        _assert_classified(record, stage.class_names)


# -- exit code 2: an unusable bundle or a usage error, reported in one line ------------------
def _main(capsys, *args: str) -> tuple[int, str]:
    """Run the real entry point; returns (exit code, stderr)."""
    with pytest.raises(SystemExit) as stop:
        main(["classify", *args])
    return stop.value.code, capsys.readouterr().err


def _assert_one_line(message: str) -> None:
    assert message.strip() and "\n" not in message.strip() and "Traceback" not in message


def test_a_missing_bundle_exits_2_with_a_one_line_message(capsys, good_tile, tmp_path):
    code, err = _main(capsys, str(good_tile), "--model", str(tmp_path / "no_bundle"))
    assert code == 2
    _assert_one_line(err)
    assert "no bundle at" in err


@pytest.mark.parametrize("role", ["backbone_fp32", "backbone_int8", "head", "head_gradient"])
def test_a_bundle_with_a_modified_model_file_exits_2_naming_the_sha256(
        capsys, idc_bundle, stage, good_tile, tmp_path, role):
    copy = Path(shutil.copytree(idc_bundle, tmp_path / "bundle"))
    model_file = copy / stage.files[role]
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    model_file.write_bytes(bytes(data))
    code, err = _main(capsys, str(good_tile), "--model", str(copy))
    assert code == 2
    _assert_one_line(err)
    assert "sha256" in err and stage.files[role] in err


def test_a_manifest_with_an_unknown_schema_version_exits_2(capsys, idc_bundle, good_tile, tmp_path):
    copy = Path(shutil.copytree(idc_bundle, tmp_path / "bundle"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["schema_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(manifest))
    code, err = _main(capsys, str(good_tile), "--model", str(copy))
    assert code == 2
    _assert_one_line(err)
    assert "schema_version 99" in err


def test_a_manifest_with_a_malformed_stage_exits_2(capsys, idc_bundle, good_tile, tmp_path):
    copy = Path(shutil.copytree(idc_bundle, tmp_path / "bundle"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["entry_stage"] = "no_such_stage"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    code, err = _main(capsys, str(good_tile), "--model", str(copy))
    assert code == 2
    _assert_one_line(err)
    assert "no_such_stage" in err


def test_an_unknown_option_exits_2(capsys, good_tile):
    code, err = _main(capsys, str(good_tile), "--no-such-option")
    assert code == 2
    assert "--no-such-option" in err and "Traceback" not in err


def test_python_dash_m_edgehisto_help_lists_classify(tmp_path):
    done = subprocess.run([sys.executable, "-m", "edgehisto", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "classify" in done.stdout
