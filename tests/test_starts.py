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


def test_slide_balance_weighs_each_class_and_each_slide_within_it_equally():
    from edgehisto.train.fit import group_balanced_weights

    # benign is scarce: 2 slides of 3 and 9 fields; malignant 3 slides of 20, 5 and 1 field(s)
    slides = np.array(["b1"] * 3 + ["b2"] * 9 + ["m1"] * 20 + ["m2"] * 5 + ["m3"])
    labels = np.array([0] * 12 + [1] * 26)
    weights = group_balanced_weights(labels, slides, 2)
    assert weights.dtype == np.float32 and weights.sum() == pytest.approx(len(labels), rel=1e-6)
    assert weights[labels == 0].sum() == pytest.approx(weights[labels == 1].sum(), rel=1e-6)
    for label in (0, 1):
        per_slide = [weights[slides == s].sum() for s in np.unique(slides[labels == label])]
        np.testing.assert_allclose(per_slide, per_slide[0], rtol=1e-6)
        for s in np.unique(slides[labels == label]):
            assert np.ptp(weights[slides == s]) == 0  # a slide's fields weigh alike


@pytest.mark.parametrize(("options", "message"), [
    (["--eval-crops", "2"], "--eval-crops applies to --field-geometry fixed-scale only"),
    (["--slide-balance", "--class-weights"], "slide balance already weighs the classes equally"),
    (["--field-geometry", "fixed-scale", "--field-height", "100"], "does not fit"),
    (["--magnification-zoom", "0.5"], "0.5 is not in the range 1.0<=x<=4.0"),
])
def test_breakhis_cv_refuses_options_that_cannot_go_together_in_one_line(tmp_path, options, message):
    from click.testing import CliRunner

    from edgehisto.cli import cli

    result = CliRunner().invoke(cli, ["train", "breakhis-cv", str(tmp_path), "--out", str(tmp_path / "cv"),
                                       *options])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_a_cv_config_refuses_a_magnification_zoom_outside_1_to_4():
    from edgehisto.train.starts import CVConfig

    for zoom in (0.5, 4.5):
        with pytest.raises(ValueError, match="magnification zoom must be between 1"):
            CVConfig(magnification_zoom=zoom)
    assert CVConfig(magnification_zoom=4.0).magnification_zoom == 4.0


def test_magnification_zoom_only_zooms_in_and_by_at_most_its_factor():
    """A horizontal ramp zoomed in stays a ramp (no reflected border), spanning 1/2 to all of its range at 2x."""
    from edgehisto.train.augment import magnification_zoom

    ramp = np.broadcast_to(np.linspace(0, 255, 64, dtype=np.float32)[None, :, None], (64, 64, 3))
    zoomed = np.asarray(magnification_zoom(0, 2.0)(np.stack([ramp] * 32), training=True))
    row = zoomed[:, 32, :, 0]
    assert np.all(np.diff(row, axis=1) >= -1e-3), "a zoom-in never mirrors the field's border in"
    spans = row[:, -1] - row[:, 0]
    assert spans.min() >= 255 * 0.5 * (62 / 63) - 1 and spans.max() <= 255 + 1e-3
    assert np.ptp(spans) > 20, "the zoom is drawn afresh per image"


def test_the_breakhis_augmenter_zooms_first_only_when_asked_and_the_idc_recipe_refuses_a_zoom():
    from edgehisto.bundle.preprocess import PreprocessSpec
    from edgehisto.train.augment import breakhis_augmenter
    from edgehisto.train.data import TileArrays, make_dataset

    plain, zoomed = breakhis_augmenter(0), breakhis_augmenter(0, 2.0)
    assert len(zoomed.layers) == len(plain.layers) + 1
    assert type(zoomed.layers[0]).__name__ == "RandomZoom" and zoomed.layers[0].height_factor == (-0.5, 0.0)
    arrays = TileArrays(np.zeros((2, 8, 8, 3), np.uint8), np.zeros(2, np.int64), ["a", "b"], [])
    with pytest.raises(ValueError, match="breakhis recipe"):
        make_dataset(arrays, np.zeros((2, 2)), PreprocessSpec(input_size=(8, 8)), batch_size=2, augment=True,
                     seed=0, recipe="idc", max_zoom=2.0)


def test_slide_calls_give_each_held_out_slide_its_share_of_fields_called_malignant():
    from edgehisto.train.starts import slide_calls

    truth = np.array([0, 0, 0, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.4, 0.6]])
    calls = slide_calls(truth, probabilities, np.array(["b", "b", "b", "m", "m"]))
    assert calls == {"b": {"fields": 3, "malignant": False, "called_malignant": 0.333},
                     "m": {"fields": 2, "malignant": True, "called_malignant": 1.0}}


def _squashed_fields(root, source) -> None:
    """A manifest-listed folder of ``source``'s first slide's fields squashed to 224x224, as ``more/`` ships them."""
    import csv

    import cv2

    from edgehisto.datasets.breakhis import SUBTYPE_NAMES, scan_breakhis

    tiles = [t for t in scan_breakhis(source).tiles if t.slide == scan_breakhis(source).tiles[0].slide]
    root.mkdir()
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["relpath", "label", "tumor_subtype", "patient_folder", "slide", "magnification"])
        for i, tile in enumerate(tiles):
            relpath = f"200X-224/{tile.patient_folder}-200-i{i:03d}.png"
            (root / relpath).parent.mkdir(parents=True, exist_ok=True)
            squashed = cv2.resize(cv2.imread(str(tile.path)), (224, 224), interpolation=cv2.INTER_AREA)
            assert cv2.imwrite(str(root / relpath), squashed)
            writer.writerow([relpath, tile.label, SUBTYPE_NAMES[tile.subtype], tile.patient_folder, tile.slide,
                             "200X"])


@pytest.mark.slow
def test_breakhis_cv_at_fixed_scale_with_slide_balance_records_its_options_and_finite_figures(tmp_path):
    """Two folds train two DenseNet121s, eagerly: a traced training step cost about 50 s a fold to build."""
    import json

    from edgehisto.datasets.synth_breakhis import synthesize_breakhis

    data = tmp_path / "data"
    synthesize_breakhis(data / "real", 16, seed=0, n_patients_per_subtype=1)
    _squashed_fields(data / "more", data / "real")
    result = subprocess.run([sys.executable, "-m", "edgehisto", "train", "breakhis-cv", str(data), "--out",
                             str(tmp_path / "cv"), "--field-geometry", "fixed-scale", "--eval-crops", "2",
                             "--slide-balance", "--magnification-zoom", "2", "--hed-augment", "--folds", "2",
                             "--epochs", "1",
                             "--batch-size", "8", "--eager"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "squashed fields restored" in result.stderr
    record = json.loads((tmp_path / "cv" / "cv.json").read_text())
    config = record["config"]
    assert (config["field_geometry"], config["eval_crops"], config["slide_balance"]) == ("fixed-scale", 2, True)
    assert config["field_height"] == 147 and config["eager"] is True and len(record["folds"]) == 2
    assert config["magnification_zoom"] == 2.0 and config["hed_augment"] is True
    for fold in record["folds"]:
        slides = fold["starts"]["scratch"]["slides"]
        assert sorted(slides) == fold["held_out_groups"]
        assert sum(s["fields"] for s in slides.values()) == fold["starts"]["scratch"]["image"]["n"]
        for level in ("image", "patient"):
            accuracy = fold["starts"]["scratch"][level]["accuracy"]
            assert accuracy is not None and np.isfinite(accuracy)
    assert np.isfinite(record["summary"]["scratch"]["image"]["accuracy"]["mean"])


def _tiny_softmax_model(size: int):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("geometry", ["squash", "fixed-scale"])
def test_held_out_fields_are_scored_whole_when_squashed_and_by_their_mean_crop_at_fixed_scale(geometry):
    from edgehisto.bundle.crops import crop_origins
    from edgehisto.bundle.preprocess import normalize
    from edgehisto.train.breakhis import breakhis_preprocess_spec
    from edgehisto.train.data import TileArrays
    from edgehisto.train.starts import CVConfig, held_out_probabilities

    config = CVConfig(input_size=32, field_geometry=geometry, field_height=40, eval_crops=3, batch_size=4)
    spec = breakhis_preprocess_spec(config.input_size)
    shape = (32, 32) if geometry == "squash" else (40, 61)
    images = np.random.default_rng(0).integers(0, 256, (5, *shape, 3), dtype=np.uint8)
    model = _tiny_softmax_model(32)
    probabilities = held_out_probabilities(model, TileArrays(images, np.zeros(5, np.int64), [], []), spec, config)
    if geometry == "squash":
        expected = model.predict(normalize(images, spec), verbose=0)
    else:
        expected = np.mean([model.predict(normalize(images[:, y:y + 32, x:x + 32], spec), verbose=0)
                            for x, y in crop_origins(shape, (32, 32), 3)], axis=0)
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    assert probabilities.shape == (5, 2)
