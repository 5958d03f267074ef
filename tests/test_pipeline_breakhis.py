"""The BreaKHis DenseNet121 hierarchy end to end: train -> export -> parity -> routed classify."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("tensorflow")

from edgehisto.cli import cli  # noqa: E402

EXACT_GATES = {"onnx_fp32_max_abs_prob_diff", "tflite_fp32_max_abs_prob_diff", "gradcam_fp32_min_pearson",
               "onnx_fp32_label_agreement"}


def _gates(bundle):
    return json.loads((bundle / "parity.json").read_text())["gates"]


def test_densenet_stage_is_densenet121_with_the_seed_head():
    from edgehisto.train.models import create_model

    model = create_model("densenet121", n_classes=4, input_size=128)
    assert model.get_layer("relu").output.shape[1:] == (4, 4, 1024)  # the default Grad-CAM layer
    assert [layer.name for layer in model.layers[-6:]] == ["gap", "dense", "head_bn", "dropout", "logits",
                                                          "probabilities"]
    assert model.get_layer("dropout").rate == 0.4


def test_imagenet_weights_fail_clearly_when_not_in_the_local_cache(tmp_path, monkeypatch):
    from edgehisto.train.architectures import resolve_weights

    monkeypatch.setattr("edgehisto.train.architectures.KERAS_CACHE_NOTOP", "no-such-weights-file.h5")
    with pytest.raises(FileNotFoundError, match="no downloads"):
        resolve_weights("imagenet")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_weights(str(tmp_path / "missing.h5"))


@pytest.mark.parametrize("fixture", ["multitask_bundle", "hierarchy_bundle"])
def test_every_stage_and_the_routed_label_pass_the_exact_parity_gates(fixture, request):
    _, bundle = request.getfixturevalue(fixture)
    gates = _gates(bundle)
    stages = {g["stage"] for g in gates}
    assert stages == {"binary", "benign_subtype", "malignant_subtype", "routed"}
    with_tflite = fixture == "multitask_bundle"
    exact = [g for g in gates if g["name"] in EXACT_GATES]
    assert len(exact) == (10 if with_tflite else 7) and all(g["passed"] for g in exact), exact
    # int8 gates are computed for every stage (a 1-epoch model's near-uniform subtype
    # probabilities make int8 agreement meaningless here, so only their presence is checked).
    assert sum(g["name"].endswith("int8_top1_agreement") for g in gates) == (6 if with_tflite else 3)


def test_multitask_bundle_shares_one_backbone_across_its_stages(multitask_bundle):
    _, bundle = multitask_bundle
    manifest = json.loads((bundle / "manifest.json").read_text())
    backbones = {s["files"]["backbone_int8"] for s in manifest["stages"].values()}
    assert backbones == {"shared/backbone.int8.onnx"}
    assert manifest["routing"] == {"binary": {"benign": "benign_subtype", "malignant": "malignant_subtype"}}
    assert manifest["preprocess"]["mean"] == [0.485, 0.456, 0.406]
    assert all(s["activations_shape"] == [4, 4, 1024] for s in manifest["stages"].values())


def test_hierarchy_run_directory_has_every_stage_and_end_to_end_metrics(hierarchy_bundle):
    run_dir, _ = hierarchy_bundle
    for stage in ("binary", "benign_subtype", "malignant_subtype"):
        assert (run_dir / f"{stage}.keras").is_file() and (run_dir / f"{stage}_curves.png").is_file()
        assert (run_dir / f"test_{stage}_confusion.png").is_file()
    metrics = json.loads((run_dir / "test_end_to_end.json").read_text())
    assert metrics["class_names"] == ["A", "F", "PT", "TA", "DC", "LC", "MC", "PC"]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["class_weight"]["benign_subtype"] is not None and run["class_weight"]["binary"] is None


@pytest.mark.parametrize("fixture", ["multitask_bundle", "hierarchy_bundle"])
def test_classify_routes_each_tile_to_its_subtype_stage_with_gradcam(fixture, request, synth_breakhis_dir, tmp_path):
    _, bundle = request.getfixturevalue(fixture)
    cams = tmp_path / "cams"
    # A barely trained DenseNet may fail its int8 gates: then it is only used when asked for, and
    # every record says so.
    passed = json.loads((bundle / "manifest.json").read_text())["parity"]["passed"]
    override = [] if passed else ["--allow-failed-parity"]
    result = CliRunner().invoke(cli, ["classify", str(synth_breakhis_dir), "--model", str(bundle), "--format",
                                      "json", "--precision", "int8", "--gradcam", str(cams), *override])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert len(records) == 64
    assert all(("warning" in record) != passed for record in records)
    for record in records:
        assert record["label"] in ("benign", "malignant")
        expected = "benign_subtype" if record["label"] == "benign" else "malignant_subtype"
        assert record["subtype_stage"] == expected
        assert record["subtype"] in record["subtype_probabilities"]
        assert abs(sum(record["subtype_probabilities"].values()) - 1) < 1e-4
    side = json.loads((bundle / "manifest.json").read_text())["stages"]["binary"]["activations_shape"][:2]
    maps = sorted(cams.glob("*.binary.gradcam.npy"))
    assert len(maps) == 64 and np.load(maps[0]).shape == tuple(side)
    assert len(list(cams.glob("*_subtype.gradcam.png"))) == 64  # one routed subtype map per tile


def test_evaluate_writes_stage_and_end_to_end_reports_for_a_hierarchy(multitask_bundle, synth_breakhis_dir, tmp_path):
    _, bundle = multitask_bundle
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["evaluate", str(bundle), str(synth_breakhis_dir), "--out", str(out),
                                      "--precision", "int8", "--limit", "24", "--panel-n", "1",
                                      "--allow-failed-parity"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "evaluation.json").read_text())
    assert {"binary_int8", "end_to_end_int8"} <= set(report["results"])
    assert (out / "end_to_end_int8_confusion.png").is_file() and (out / "summary.md").is_file()
