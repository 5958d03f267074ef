"""A grouped CV measured at the precision that ships: ``train breakhis-cv --keep-models``, then
``edgehisto cv-precision`` exports each fold and scores its held-out fields at fp32 and int8."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from edgehisto.bundle.gates import Thresholds
from edgehisto.metrics.scores import binary_figures

EH = [sys.executable, "-m", "edgehisto"]


def _run(*args, timeout=600):
    return subprocess.run([*EH, *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory):
    """Two folds of one epoch on 16 synthetic fields, each fold's model kept (eager: no graph to build)."""
    from edgehisto.datasets.synth_breakhis import synthesize_breakhis

    root = tmp_path_factory.mktemp("cvp")
    synthesize_breakhis(root / "data" / "real", 16, seed=0, n_patients_per_subtype=1)
    result = _run("train", "breakhis-cv", root / "data", "--out", root / "cv", "--folds", "2", "--epochs", "1",
                  "--batch-size", "8", "--eager", "--keep-models")
    assert result.returncode == 0, result.stderr[-2000:]
    return root


@pytest.mark.slow
def test_breakhis_cv_keeps_each_fold_model_and_every_held_out_fields_probability(cv_run):
    record = json.loads((cv_run / "cv" / "cv.json").read_text())
    assert record["config"]["keep_models"] is True
    with open(cv_run / "cv" / "held_out.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for fold in record["folds"]:
        assert (cv_run / "cv" / f"fold{fold['fold']}-scratch.keras").is_file()
        mine = [r for r in rows if int(r["fold"]) == fold["fold"]]
        assert sorted({r["group"] for r in mine}) == fold["held_out_groups"]
        truth = np.array([int(r["malignant"]) for r in mine])
        called = np.array([float(r["p_malignant"]) > 0.5 for r in mine]).astype(int)
        # The listed probabilities are the ones the fold's figures were computed from.
        assert binary_figures(truth, called) == fold["starts"]["scratch"]["image"]
    assert len({r["relpath"] for r in rows}) == len(rows) == record["n_images"]


@pytest.mark.slow
def test_cv_precision_scores_every_fold_at_fp32_and_int8_against_the_stage_before(cv_run):
    result = _run("cv-precision", cv_run / "cv", "--data", cv_run / "data", "--calibration-images", "8")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "scratch int8: balanced accuracy image" in result.stdout
    record = json.loads((cv_run / "cv" / "cv.json").read_text())
    report = json.loads((cv_run / "cv" / "cv_precision.json").read_text())
    assert report["quantization"]["op_types"] and report["levels"] == ["keras", "fp32", "int8"]
    assert len(report["folds"]) == len(record["folds"])
    for fold, measured in zip(record["folds"], report["folds"], strict=True):
        levels = measured["starts"]["scratch"]
        assert levels["keras"]["image"] == fold["starts"]["scratch"]["image"]
        assert levels["keras"]["patient"] == fold["starts"]["scratch"]["patient"]
        # ONNX fp32 is the Keras model: within the export's own fp32 gate, the same calls.
        assert levels["fp32"]["agreement"]["against"] == "keras"
        assert levels["fp32"]["agreement"]["max_abs_dp"] <= Thresholds().fp32_max_abs_diff
        assert levels["fp32"]["agreement"]["top1"] == 1.0
        assert levels["int8"]["agreement"]["against"] == "fp32"
        assert 0.0 <= levels["int8"]["agreement"]["top1"] <= 1.0
        assert np.isfinite(levels["int8"]["agreement"]["max_abs_dp"])
    assert set(report["summary"]["scratch"]) == {"keras", "fp32", "int8"}


def _refused(cv_dir, data, message):
    result = _run("cv-precision", cv_dir, "--data", data, timeout=300)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr[-1500:]
    assert len([line for line in result.stderr.splitlines() if line.startswith("error")]) == 1


@pytest.mark.slow
def test_cv_precision_refuses_missing_or_swapped_fold_models_and_other_data_in_one_line(cv_run, tmp_path):
    import shutil

    from edgehisto.datasets.synth_breakhis import synthesize_breakhis

    stripped, swapped = tmp_path / "no-models", tmp_path / "swapped"
    stripped.mkdir()
    for name in ("cv.json", "held_out.csv"):
        (stripped / name).write_bytes((cv_run / "cv" / name).read_bytes())
    shutil.copytree(cv_run / "cv", swapped)
    (swapped / "fold0-scratch.keras").write_bytes((cv_run / "cv" / "fold1-scratch.keras").read_bytes())
    synthesize_breakhis(tmp_path / "other" / "real", 8, seed=7, n_patients_per_subtype=1)
    _refused(stripped, cv_run / "data", "--keep-models")
    _refused(tmp_path, cv_run / "data", "not a breakhis-cv run directory")
    _refused(cv_run / "cv", tmp_path / "other", "is not the data")
    # Another fold's model scores these fields differently from the Keras probabilities listed.
    _refused(swapped, cv_run / "data", "is not the model that scored them")


def _fake_run(root, config=None, columns="fold,start,relpath,group,malignant,p_malignant"):
    root.mkdir()
    fold = {"fold": 0, "held_out_groups": ["1"], "starts": {"scratch": {"image": {"n": 1}}}}
    (root / "cv.json").write_text(json.dumps({"config": config or {}, "n_images": 2, "folds": [fold]}))
    (root / "held_out.csv").write_text(columns + "\n")
    return root


@pytest.mark.parametrize("case, message", [
    ("fixed-scale", "squashed whole fields only"),
    ("no p_malignant column", "lacks the column(s) p_malignant"),
    ("not a record", "is not a breakhis-cv record"),
    ("a probability that is not a number", "line 2: fold, malignant and p_malignant must be numbers"),
])
def test_cv_precision_refuses_runs_it_cannot_score_before_exporting_anything(tmp_path, case, message):
    run_dir = tmp_path / "cv"
    if case == "fixed-scale":
        _fake_run(run_dir, {"field_geometry": "fixed-scale"})
    elif case == "no p_malignant column":
        _fake_run(run_dir, columns="fold,start,relpath,group,malignant")
    elif case == "a probability that is not a number":
        _fake_run(run_dir, columns="fold,start,relpath,group,malignant,p_malignant\n0,scratch,a.png,1,0,high")
    else:
        _fake_run(run_dir)
        (run_dir / "cv.json").write_text(json.dumps({"config": [], "folds": {}}))
    _refused(run_dir, tmp_path, message)


def test_a_folds_training_fields_are_every_field_outside_its_held_out_groups():
    from edgehisto.export.cv_precision import training_fields

    relpaths = ["a1", "a2", "b1", "c1", "c2"]
    groups = ["a", "a", "b", "c", "c"]
    assert training_fields(relpaths, groups, ["a", "c"]) == ["b1"]
    assert training_fields(relpaths, groups, []) == relpaths
