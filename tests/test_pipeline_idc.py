"""The IDC slice end to end: synth -> train -> export -> parity -> classify."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("tensorflow")

from edgehisto.cli import cli  # noqa: E402
from edgehisto.train.models import MODELS  # noqa: E402


def test_idc_cnn_has_the_seed_architecture():
    from edgehisto.train.models import create_model

    model = create_model("idc_cnn")
    assert model.count_params() == 171_329
    assert len(model.layers) - 1 == 27  # the InputLayer is not one of the seed's 27 layers
    assert model.get_layer("separable_conv2d").output.shape[1:] == (16, 16, 256)


def test_training_writes_a_complete_run_directory(idc_run):
    for name in ("model.keras", "run.json", "model_history.csv", "model_history.json", "model_curves.png", "split.csv",
                 "split.json", "test_metrics.json", "test_metrics_confusion.csv", "test_metrics_confusion.png"):
        assert (idc_run / name).is_file(), name
    run = json.loads((idc_run / "run.json").read_text())
    assert run["n_params"] == 171_329
    registered = MODELS[run["model"]]
    assert (run["output"], run["gradcam_layer"]) == (registered.output, registered.gradcam_layer)
    assert run["preprocess"]["input_size"] == [50, 50]  # the fixture trains at the CNN's native size
    split = json.loads((idc_run / "split.json").read_text())
    assert split["key"] == "patient" and split["shared_groups"] == []
    metrics = json.loads((idc_run / "test_metrics.json").read_text())
    assert np.asarray(metrics["confusion_matrix"]).sum() == metrics["n"] == sum(split["class_counts"]["test"].values())


def test_export_passes_every_parity_gate(idc_bundle):
    report = json.loads((idc_bundle / "parity.json").read_text())
    names = {gate["name"] for gate in report["gates"]}
    assert names == {"onnx_fp32_max_abs_prob_diff", "onnx_int8_top1_agreement", "onnx_int8_accuracy_drop",
                     "tflite_fp32_max_abs_prob_diff", "tflite_int8_top1_agreement", "tflite_int8_accuracy_drop",
                     "gradcam_fp32_min_pearson", "gradcam_int8_mean_pearson"}
    assert report["passed"], report["gates"]


def test_check_parity_cli_prints_a_table_and_exits_zero(idc_bundle):
    # Every held-out tile (about 170): on a 40-tile subsample one flipped near-tie is a 2.5-point drop.
    result = CliRunner().invoke(cli, ["check-parity", str(idc_bundle), "--limit", "512", "--gradcam-limit", "8"])
    assert result.exit_code == 0, result.output
    assert "gradcam_fp32_min_pearson" in result.output and "PASS" in result.output


def test_check_parity_exits_one_when_a_gate_fails(idc_bundle):
    # An impossible threshold must turn the fp32 gate red: the gate can fail.
    result = CliRunner().invoke(cli, ["check-parity", str(idc_bundle), "--limit", "20",
                                      "--gradcam-limit", "4", "--max-prob-diff", "-1"])
    assert result.exit_code == 1
    assert "FAIL" in result.output and "PARITY FAILED" in result.output


def test_parity_catches_a_bundle_whose_onnx_does_not_match_its_keras_model(idc_bundle, tmp_path):
    import keras

    from edgehisto.bundle.manifest_writer import write_manifest
    from edgehisto.export.parity import check_parity
    from edgehisto.train.models import create_model

    copy = tmp_path / "bundle"
    shutil.copytree(idc_bundle, copy)
    keras.utils.set_random_seed(123)
    manifest = json.loads((copy / "manifest.json").read_text())
    side = manifest["preprocess"]["input_size"][0]  # a different network at the bundle's input size
    create_model("idc_cnn", input_size=side).save(copy / manifest["stages"]["idc"]["reference_keras"])
    write_manifest(copy, manifest)
    report = check_parity(copy, limit=24, gradcam_limit=4)
    failed = {g.name for g in report.gates if not g.passed}
    assert "onnx_fp32_max_abs_prob_diff" in failed and not report.passed


def test_cli_pipeline_runs_from_synthetic_tiles_to_gradcam(tmp_path):
    runner = CliRunner()
    data, run, bundle, cams = (tmp_path / n for n in ("data", "run", "bundle", "cams"))
    steps = [
        ["synth", "idc", "--out", str(data), "--n", "120", "--seed", "3", "--patients", "4"],
        ["train", "idc", str(data), "--out", str(run), "--epochs", "1", "--input-size", "64"],
        ["export", str(run), "--out", str(bundle), "--calibration-images", "16"],
        ["classify", str(data), "--model", str(bundle), "--precision", "int8", "--gradcam", str(cams),
         "--format", "json"],
    ]
    outputs = []
    for args in steps:
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, (args, result.output)
        outputs.append(result.stdout)
    records = json.loads(outputs[-1])
    assert len(records) == 120 and all("error" not in r for r in records)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["preprocess"]["input_size"] == [64, 64]
    maps = sorted(cams.glob("*.npy"))
    assert len(maps) == 120 and np.load(maps[0]).shape == (8, 8)


def test_a_model_with_no_evidence_on_any_calibration_tile_is_refused_in_one_line(idc_bundle, monkeypatch):
    """The exporter once wrote gradcam_display_peak 0.0, which its own schema then refused."""
    from edgehisto.bundle.manifest import load_bundle
    from edgehisto.bundle.preprocess import load_resized, normalize
    from edgehisto.errors import ExportError
    from edgehisto.export.golden import display_peaks
    from edgehisto.runtime.classifier import Classifier

    manifest = json.loads((idc_bundle / "manifest.json").read_text())
    bundle = load_bundle(idc_bundle)
    # The golden tiles: synthetic tissue of both classes (uniform noise shows a trained model no evidence).
    calibration = normalize(np.stack([load_resized(bundle.file(name), bundle.preprocess)
                                      for name in bundle.golden.tiles[:8]]), bundle.preprocess)
    assert display_peaks(idc_bundle, manifest, calibration)["idc"] > 0
    monkeypatch.setattr(Classifier, "gradcam", lambda self, x, stage, classes: np.zeros((len(x), 4, 4), np.float32))
    with pytest.raises(ExportError, match="shows no IDC-positive evidence on any of the 8 calibration tiles") as raised:
        display_peaks(idc_bundle, manifest, calibration)
    assert "\n" not in str(raised.value)
