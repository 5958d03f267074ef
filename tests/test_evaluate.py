"""``edgehisto evaluate``: metrics, Grad-CAM panels, localisation and the deletion test.

The localisation scores are checked exactly on hand-made maps and masks; the report as a whole
is checked on the session's small exported IDC bundle and its synthetic tiles (which carry
lesion masks for the positives).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgehisto.bundle.manifest import Bundle, load_bundle
from edgehisto.bundle.preprocess import PreprocessSpec
from edgehisto.datasets.labelled import even_subsample
from edgehisto.errors import EdgehistoError
from edgehisto.evaluate import localisation as loc
from edgehisto.evaluate.evaluate_bundle import evaluate_bundle
from edgehisto.evaluate.labelled_tiles import bundle_tiles
from edgehisto.evaluate.scoring import TileOutcome

LIMIT = 60
needs_tensorflow = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                      reason="the idc_bundle fixture trains and exports a model")


# -- localisation scores on hand-made maps and masks --------------------------------------------
def test_pointing_game_hits_only_when_the_maps_peak_lies_inside_the_lesion():
    heat = np.full((4, 4), 0.2, np.float32)
    heat[1, 2] = 1.0
    lesion = np.zeros((4, 4), bool)
    lesion[0:2, 2:4] = True
    assert loc.pointing_hit(heat, lesion) is True
    assert loc.pointing_hit(heat, ~lesion) is False


def test_energy_share_is_the_maps_total_inside_the_lesion_over_its_total():
    heat = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    assert loc.energy_share(heat, np.array([[True, False], [False, True]])) == pytest.approx(0.5, abs=1e-12)
    assert loc.energy_share(heat, np.array([[True, True], [False, False]])) == pytest.approx(0.3, abs=1e-7)
    assert loc.energy_share(heat, np.ones((2, 2), bool)) == pytest.approx(1.0, abs=1e-12)
    assert loc.energy_share(heat, np.zeros((2, 2), bool)) == 0.0


def test_an_all_zero_map_has_no_pointing_hit_and_no_energy_share():
    heat, lesion = np.zeros((3, 3), np.float32), np.ones((3, 3), bool)
    assert loc.pointing_hit(heat, lesion) is None
    assert loc.energy_share(heat, lesion) is None


def test_a_map_and_a_mask_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="shapes differ"):
        loc.energy_share(np.ones((2, 2)), np.ones((3, 3), bool))


def test_upsampled_map_is_scaled_to_one_and_sized_like_the_tile():
    heat = loc.upsample_map(np.array([[0.0, 2.0], [0.0, 0.0]], np.float32), (8, 6))
    assert heat.shape == (8, 6)
    assert heat.max() == pytest.approx(1.0, abs=1e-6) and heat.min() >= 0.0
    assert np.unravel_index(np.argmax(heat), heat.shape)[1] >= 3  # the peak stays top right


def test_a_mask_is_padded_with_background_and_resized_like_its_tile():
    spec = PreprocessSpec(input_size=(100, 100), pad_to=(50, 50), pad_value=255)
    mask = np.zeros((30, 50), np.uint8)  # an undersized slide-edge tile: 20 rows get padded
    mask[10:20, 20:30] = 255
    lesion = loc.mask_to_input(mask, spec)
    expected = np.zeros((100, 100), bool)
    expected[20:40, 40:60] = True  # 2x, and the white padding is not lesion
    np.testing.assert_array_equal(lesion, expected)


def test_top_fraction_mask_picks_the_hottest_pixels_and_random_mask_as_many():
    heat = np.arange(100, dtype=np.float32).reshape(10, 10)
    top = loc.top_fraction_mask(heat, 0.2)
    np.testing.assert_array_equal(top, heat >= 80)
    drawn = loc.random_fraction_mask(heat.shape, 0.2, np.random.default_rng(0))
    assert drawn.sum() == 20
    np.testing.assert_array_equal(drawn, loc.random_fraction_mask(heat.shape, 0.2, np.random.default_rng(0)))


def test_deleting_pixels_sets_the_background_and_leaves_the_callers_tile_alone():
    image = np.zeros((2, 2, 3), np.uint8)
    mask = np.array([[True, False], [False, False]])
    deleted = loc.delete_pixels(image, mask, 255)
    assert deleted[0, 0].tolist() == [255, 255, 255] and deleted[1:, :].max() == 0
    assert image.max() == 0


def test_localisation_means_count_only_tiles_with_masks_and_a_peak():
    outcomes = [
        TileOutcome("a", 1, 1, 0.9, lesion_area_share=0.25, pointing_hit=True, energy_share=0.6),
        TileOutcome("b", 1, 0, 0.7, lesion_area_share=0.5, pointing_hit=False, energy_share=0.2),
        TileOutcome("c", 1, 1, 0.8, lesion_area_share=0.5),  # all-zero map: no peak
        TileOutcome("d", 0, 0, 0.9),  # no mask
    ]
    by_class = loc.localisation_by_class(outcomes, ["negative", "positive"])
    assert list(by_class) == ["positive"]
    positive = by_class["positive"]
    assert (positive["n"], positive["n_empty_maps"]) == (3, 1)
    assert positive["pointing_game"] == pytest.approx(0.5, abs=1e-12)
    assert positive["energy_share"] == pytest.approx(0.4, abs=1e-12)
    assert positive["lesion_area_share"] == pytest.approx(0.375, abs=1e-12)
    assert positive["correct"]["n"] == 2 and positive["correct"]["pointing_game"] == 1.0


def test_even_subsample_keeps_the_ends_and_spreads_evenly():
    assert even_subsample(10, 4).tolist() == [0, 3, 6, 9]
    assert even_subsample(3, None).tolist() == [0, 1, 2]


def test_a_bundle_of_an_unknown_task_is_refused_with_a_clear_error(tmp_path):
    with pytest.raises(EdgehistoError, match="does not know the task 'lung'"):
        bundle_tiles(Bundle(tmp_path, {"task": "lung"}), tmp_path, None)


def test_a_breakhis_bundle_reads_breakhis_data_and_says_when_it_is_missing(tmp_path):
    with pytest.raises(EdgehistoError, match="BreaKHis"):
        bundle_tiles(Bundle(tmp_path, {"task": "breakhis"}), tmp_path, None)


# -- the report on the exported IDC bundle ------------------------------------------------------
@pytest.fixture(scope="module")
def evaluation(idc_bundle, synth_idc_dir, tmp_path_factory):
    """(report dir, returned report, log lines and progress reports) of one evaluation at both precisions."""
    out, lines = tmp_path_factory.mktemp("evaluation"), []
    # Every tile, not only the 21 held-out ones: these tests exercise the report on 60 tiles.
    report = evaluate_bundle(idc_bundle, synth_idc_dir, out, limit=LIMIT, panel_n=3, all_tiles=True,
                             log=lines.append, progress=lambda *reported: lines.append(reported))
    return out, report, lines


@needs_tensorflow
@pytest.mark.slow
def test_report_has_metrics_and_confusion_matrices_for_both_precisions(evaluation):
    out, report, lines = evaluation
    for precision in ("fp32", "int8"):
        metrics = json.loads((out / f"idc_{precision}.json").read_text())
        assert metrics["n"] == LIMIT and 0.0 <= metrics["balanced_accuracy"] <= 1.0
        assert cv2.imread(str(out / f"idc_{precision}_confusion.png")) is not None
        assert (out / f"idc_{precision}_confusion.csv").is_file()
        assert (LIMIT, LIMIT, f"{precision} tiles") in lines  # the last progress report of that precision
    assert json.loads((out / "evaluation.json").read_text())["results"].keys() == {"idc_fp32", "idc_int8"}
    assert report["failures"] == {"fp32": [], "int8": []}


@needs_tensorflow
@pytest.mark.slow
def test_grad_cam_panels_are_pngs_opencv_can_read(evaluation):
    out, report, _ = evaluation
    for precision in ("fp32", "int8"):
        names = ["IDC-negative", "IDC-positive", "grid2x2"]
        expected = [f"panels/idc_{precision}_{name}.png" for name in names]
        assert report["results"][f"idc_{precision}"]["files"]["panels"] == expected
        for relative in expected:
            picture = cv2.imread(str(out / relative))
            assert picture is not None and min(picture.shape[:2]) > 200


@needs_tensorflow
@pytest.mark.slow
def test_summary_links_only_files_that_exist(evaluation):
    out, _, _ = evaluation
    summary = (out / "summary.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", summary)
    assert "panels/idc_int8_grid2x2.png" in links and "idc_fp32_confusion.png" in links
    assert [link for link in links if not (out / link).is_file()] == []
    for words in ("balanced accuracy", "pointing game", "energy share", "random 20%"):
        assert words in summary


@needs_tensorflow
@pytest.mark.slow
def test_localisation_is_in_unit_interval_and_counts_only_tiles_with_masks(evaluation, idc_bundle,
                                                                          synth_idc_dir):
    out, report, _ = evaluation
    tiles, _, _ = bundle_tiles(load_bundle(idc_bundle), synth_idc_dir, LIMIT, all_tiles=True)
    masked = {str(t.path) for t in tiles if t.mask_path is not None}
    assert masked and all(t.truth["idc"] == 1 for t in tiles if t.mask_path is not None)
    for precision in ("fp32", "int8"):
        localisation = report["results"][f"idc_{precision}"]["localisation"]
        assert list(localisation) == ["IDC-positive"]  # the synthetic masks belong to positives
        scores = localisation["IDC-positive"]
        assert scores["n"] == len(masked)
        for key in ("pointing_game", "energy_share", "lesion_area_share"):
            assert 0.0 <= scores[key] <= 1.0
        with open(out / f"idc_{precision}_predictions.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert {r["path"] for r in rows if r["lesion_area_share"]} == masked


@needs_tensorflow
@pytest.mark.slow
def test_deletion_test_reports_the_top_k_drop_next_to_the_random_drop(evaluation):
    _, report, _ = evaluation
    for result in report["results"].values():
        deletion = result["deletion"]
        assert deletion["n"] + deletion["n_empty_maps"] == LIMIT
        assert deletion["top_k_percent"] == 20.0
        for key in ("mean_drop_top_k", "mean_drop_random"):
            assert -1.0 <= deletion[key] <= 1.0
        assert 0.0 <= deletion["share_top_k_beats_random"] <= 1.0


@needs_tensorflow
@pytest.mark.slow
def test_evaluate_command_exits_0_and_writes_only_the_asked_precision(idc_bundle, synth_idc_dir, tmp_path):
    from edgehisto.cli import cli

    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["evaluate", str(idc_bundle), str(synth_idc_dir), "--out", str(out),
                                      "--precision", "fp32", "--limit", "20", "--panel-n", "2"])
    assert result.exit_code == 0, result.output
    assert "idc_fp32: accuracy" in result.output and "summary.md" in result.output
    assert (out / "idc_fp32.json").is_file() and not (out / "idc_int8.json").exists()
    assert cv2.imread(str(out / "panels" / "idc_fp32_grid2x2.png")) is not None


def test_evaluate_scores_only_the_held_out_tiles_unless_asked_for_all(idc_bundle, synth_idc_dir):
    bundle = load_bundle(idc_bundle)
    held, _, scope = bundle_tiles(bundle, synth_idc_dir, None)
    every, _, everything = bundle_tiles(bundle, synth_idc_dir, None, all_tiles=True)
    test_rows = (idc_bundle / "reference" / "test_split.csv").read_text().splitlines()[1:]
    assert len(held) == len(test_rows) < len(every)
    assert "held-out" in scope and "--all-tiles" in everything


@needs_tensorflow
@pytest.mark.slow
def test_evaluate_logs_a_start_and_an_end_line_per_precision_not_one_per_batch(idc_bundle, synth_idc_dir, tmp_path):
    # The installed command with stderr to a pipe, as in a log file: no progress bar, a few lines.
    edgehisto = Path(sys.executable).with_name("edgehisto")
    done = subprocess.run([str(edgehisto), "evaluate", str(idc_bundle), str(synth_idc_dir), "--out",
                           str(tmp_path / "report"), "--all-tiles", "--limit", "48", "--batch-size", "8",
                           "--panel-n", "1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    progress = [line for line in done.stderr.splitlines() if re.match(r"(fp32|int8) tiles: \d+/48$", line)]
    assert progress == ["fp32 tiles: 0/48", "fp32 tiles: 48/48", "int8 tiles: 0/48", "int8 tiles: 48/48"]
    assert not re.search(r"\b(8|16|24)/48\b", done.stderr)  # six batches each, none logged on its own


@needs_tensorflow
@pytest.mark.slow
def test_an_idc_map_is_labelled_idc_evidence_and_its_deletion_is_measured_on_p_idc(evaluation, idc_bundle):
    out, report, _ = evaluation
    summary = (out / "summary.md").read_text()
    assert "Grad-CAM of the predicted class" not in summary
    assert "idc shows IDC-positive evidence" in summary
    for result in report["results"].values():
        assert result["map_meaning"] == "IDC-positive evidence"
        deletion = result["deletion"]
        flagged = deletion["mean_drop_top_k"] < deletion["mean_drop_random"]
        assert deletion["worse_than_random"] is flagged
        assert ("(worse than random)" in summary) is any(
            r["deletion"]["worse_than_random"] for r in report["results"].values())
    # The drop is in P(IDC-positive) for every tile, those called negative included: recompute one.
    from edgehisto.evaluate import localisation as loc
    from edgehisto.runtime.classifier import Classifier

    with open(out / "idc_int8_predictions.csv", newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["predicted"] == "IDC-negative" and r["deletion_drop"])
    classifier = Classifier(idc_bundle, precision="int8")
    (result,) = classifier.classify_paths([row["path"]], gradcam=True)
    heat = loc.upsample_map(result.stages[0].cam, result.image.shape[:2])
    deleted = loc.delete_pixels(result.image, loc.top_fraction_mask(heat, 0.2), classifier.spec.pad_value)
    (after,) = classifier.classify_arrays([deleted])
    expected = result.stages[0].probabilities["IDC-positive"] - after.stages[0].probabilities["IDC-positive"]
    assert float(row["deletion_drop"]) == pytest.approx(expected, abs=1e-4)
