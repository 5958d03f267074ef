"""Choosing the BreaKHis backbone start: grouped folds, held-out figures, patient votes, weight copy."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgehisto.metrics.scores import binary_figures, grouped_folds, patient_vote
from edgehisto.train.starts import summarize_cv


def test_grouped_folds_hold_every_group_out_exactly_once_and_never_split_one():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(23), rng.integers(5, 30, 23))
    labels = (groups * 7) % 8  # each group has one subtype, as a patient does
    folds = grouped_folds(labels, groups, n_folds=4, seed=0)
    held = np.concatenate(folds)
    assert sorted(held.tolist()) == list(range(len(groups)))
    for fold in folds:
        inside = set(groups[fold])
        outside = set(groups[np.setdiff1d(np.arange(len(groups)), fold)])
        assert not inside & outside


def test_binary_figures_name_sensitivity_as_malignant_recall():
    truth = np.array([1, 1, 1, 1, 0, 0])
    predicted = np.array([1, 1, 1, 0, 0, 1])
    figures = binary_figures(truth, predicted)
    assert figures["sensitivity"] == pytest.approx(0.75)
    assert figures["specificity"] == pytest.approx(0.5)
    assert figures["balanced_accuracy"] == pytest.approx(0.625)
    assert figures["accuracy"] == pytest.approx(4 / 6)


def test_patient_vote_takes_the_majority_and_breaks_ties_by_mean_probability():
    truth = np.array([0, 0, 0, 1, 1])
    patients = np.array(["a", "a", "a", "b", "b"])
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.8, 0.2], [0.45, 0.55], [0.9, 0.1]])
    truths, votes = patient_vote(truth, probabilities, patients)
    assert truths.tolist() == [0, 1]
    assert votes.tolist() == [0, 0]  # b: one vote each, mean favours benign


def test_cv_summary_reports_mean_and_spread_per_start():
    fold = lambda v: {"starts": {"s": {"image": binary_figures(np.array([0, 1]), np.array([0, v])),  # noqa: E731
                                       "patient": binary_figures(np.array([0, 1]), np.array([0, 1]))}}}
    summary = summarize_cv({"starts": {"s": None}, "folds": [fold(1), fold(0)]})
    image = summary["s"]["image"]["balanced_accuracy"]
    assert image["mean"] == pytest.approx(0.75)
    assert image["sd"] == pytest.approx(np.std([1.0, 0.5], ddof=1))


def test_a_pretrained_keras_model_seeds_the_backbone_layer_by_layer(tmp_path):
    from edgehisto.train.models import create_model

    source = create_model("densenet121", n_classes=2, input_size=32)
    source.get_layer("conv1_conv").set_weights([w + 1.0 for w in source.get_layer("conv1_conv").get_weights()])
    path = tmp_path / "backbone.keras"
    source.save(path)
    seeded = create_model("densenet121", n_classes=4, input_size=64, weights=str(path))
    for name in ("conv1_conv", "conv5_block16_2_conv", "bn"):
        for a, b in zip(seeded.get_layer(name).get_weights(), source.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    assert seeded.get_layer("logits").get_weights()[0].shape == (64, 4)  # the head is new


def test_breakhis_cv_rejects_a_missing_start_file_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "edgehisto", "train", "breakhis-cv", str(tmp_path), "--out",
                             str(tmp_path / "cv"), "--start", f"idc={tmp_path / 'absent.keras'}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "expected 'scratch' or NAME=WEIGHT_FILE" in result.stderr
    assert "Traceback" not in result.stderr
