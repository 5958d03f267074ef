"""The embedded BreaKHis bundle: chosen by name, routed with Grad-CAM, carded with numbers it reproduces."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgehisto.runtime.registry import BREAKHIS_MODEL, embedded_bundles
from tests.test_exit_codes import run

BUNDLE = embedded_bundles().get(BREAKHIS_MODEL)
SHARED_BREAKHIS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "breakhis" / "real"
pytestmark = pytest.mark.skipif(BUNDLE is None, reason="no embedded BreaKHis bundle in this checkout")
CLASSES = ("A", "F", "PT", "TA", "DC", "LC", "MC", "PC")


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads((BUNDLE / "model_card.json").read_text())


def test_models_lists_both_embedded_models_by_the_names_classify_takes(tmp_path):
    done = run("console script", "models", "--json", "--no-verify", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert "idc" in rows["idc-default"]["names"] and rows["idc-default"]["default"]
    breakhis = rows[BREAKHIS_MODEL]
    assert breakhis["task"] == "breakhis" and not breakhis["default"]
    assert breakhis["precisions"] == ["fp32", "int8"]
    assert "BreaKHis" in breakhis["expects"] and Path(breakhis["model_card"]).is_file()


def test_classify_by_name_routes_a_field_with_a_map_per_stage_and_warns_on_a_patch(tmp_path):
    from edgehisto.datasets.synth_breakhis import synthesize_breakhis

    synthesize_breakhis(tmp_path / "synth", 8, seed=5)
    field = next(p for p in (tmp_path / "synth").rglob("SOB_*.png") if not p.name.endswith("_mask.png"))
    small = tmp_path / "small-field.png"  # the shared copy's size: half of 700x460
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(field)), (350, 230), interpolation=cv2.INTER_AREA))
    patch = tmp_path / "patch.png"
    cv2.imwrite(str(patch), np.random.default_rng(0).integers(0, 256, (50, 50, 3), dtype=np.uint8))
    done = run("console script", "classify", field, small, patch, "--model", "breakhis", "--precision", "int8",
               "--format", "json", "--gradcam", tmp_path / "maps", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    records = {Path(r["path"]).name: r for r in json.loads(done.stdout)}
    for name in (field.name, small.name):
        record = records[name]
        assert record["label"] in ("benign", "malignant") and "warning" not in record
        assert record["subtype_stage"] == f"{record['label']}_subtype" and record["subtype"] in CLASSES
        stages = {Path(f).name.split(".")[-3] for f in record["gradcam_files"]}
        assert stages == {"binary", record["subtype_stage"]}
    assert "far from what this model expects" in records[patch.name]["warning"]
    # The card's one line against trusting a label reaches the command-line user too, once, on stderr.
    caveat = json.loads((BUNDLE / "model_card.json").read_text())["caveat"]
    assert caveat and done.stderr.count(f"caveat (model card): {caveat}\n") == 1


def test_a_bundle_whose_card_has_no_caveat_prints_none(tmp_path):
    import shutil

    from edgehisto.bundle.manifest_writer import rehash_files

    copy = tmp_path / "breakhis"
    shutil.copytree(BUNDLE, copy)
    card = json.loads((copy / "model_card.json").read_text())
    card["caveat"] = None
    (copy / "model_card.json").write_text(json.dumps(card))
    rehash_files(copy, ("model_card.json",))
    field = tmp_path / "field.png"
    cv2.imwrite(str(field), np.full((230, 350, 3), (200, 120, 190), np.uint8))
    done = run("console script", "classify", field, "--model", copy, "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "caveat" not in done.stderr


def test_the_package_copy_ships_no_real_image_and_fits_the_wheel_budget(card):
    from edgehisto.release.breakhis_model import MAX_BUNDLE_BYTES

    files = [p for p in BUNDLE.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= MAX_BUNDLE_BYTES
    manifest = json.loads((BUNDLE / "manifest.json").read_text())
    assert manifest["golden"]["source"].startswith("synthetic")
    pictures = {p.relative_to(BUNDLE).as_posix() for p in files if p.suffix == ".png"}
    assert pictures == set(manifest["golden"]["tiles"]) | {
        f"card/held_out_{kind}_{p}.png" for kind in ("binary", "routed") for p in ("fp32", "int8")}
    assert not any(p.suffix in (".keras", ".tflite") for p in files)
    text = (BUNDLE / "MODEL_CARD.md").read_text()
    assert "research use" in text and "not a diagnostic device" in text
    assert "Subtypes with no test patient" in text


def _held_out_root() -> Path:
    """Where the bundle's held-out listing points: the data root export recorded, from the repository root."""
    recorded = json.loads((BUNDLE / "manifest.json").read_text())["reference"]["data_root"]
    return Path(__file__).resolve().parents[1] / recorded


@pytest.mark.skipif(not _held_out_root().is_dir(), reason="the BreaKHis data the card was measured on is absent")
def test_the_cards_test_figures_are_what_the_shipped_bundle_computes(card):
    from edgehisto.runtime.classifier import Classifier

    with open(BUNDLE / "reference" / "test_split.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    labels = np.array([int(r["label"]) for r in rows])
    results = Classifier(BUNDLE, precision="int8").classify_paths([_held_out_root() / r["relpath"] for r in rows])
    assert all(r.ok for r in results)
    predicted = np.array([r.stages[0].class_index for r in results])
    truth = (labels >= 4).astype(int)
    balanced = np.mean([(predicted[truth == c] == c).mean() for c in (0, 1)])
    stated = card["test"]["int8"]["image"]["binary"]
    assert stated["n"] == len(rows)
    assert balanced == pytest.approx(stated["balanced_accuracy"], abs=1e-12)
    routed = np.array([CLASSES.index(r.stages[1].label) for r in results])
    assert (routed == labels).mean() == pytest.approx(card["test"]["int8"]["image"]["routed"]["accuracy"], abs=1e-12)


def test_the_cards_cv_table_names_every_lever_a_row_used():
    """Each CV row says how fields were fed and weighed, so rows that differ only in a lever are told apart."""
    from edgehisto.release.breakhis_card_cv import cv_lines

    def record(**config):
        figure = {"mean": 0.8, "sd": 0.05}
        level = {"balanced_accuracy": figure, "sensitivity": figure, "specificity": figure, "folds": 3}
        return {"config": {"folds": 3, "epochs": 6, "learning_rate": 1e-4, **config}, "n_groups": 49,
                "n_images": 1174, "summary": {"idc": {"image": level, "patient": level}}}

    lines = cv_lines({"old": record(class_weights=True, stain_augment=True),
                       "levers": record(field_geometry="fixed-scale", eval_crops=3, slide_balance=True,
                                        magnification_zoom=2.0, stain_augment=True, hed_augment=True)})
    header = next(line for line in lines if line.startswith("| recipe"))
    rows = {line.split(" |")[0]: [cell.strip() for cell in line.split("|")[1:-1]]
            for line in lines if line.startswith("| old") or line.startswith("| levers")}
    columns = [cell.strip() for cell in header.split("|")[1:-1]]
    assert all(len(cells) == len(columns) for cells in rows.values())
    old, levers = (dict(zip(columns, rows[f"| {n} (idc)"], strict=True)) for n in ("old", "levers"))
    assert (old["field"], old["weighting"], old["magnification zoom"]) == ("squashed", "class weights", "off")
    assert (levers["field"], levers["weighting"], levers["magnification zoom"]) == (
        "fixed scale, 3 crops", "slide balance", "up to 2x")
    assert (old["stain jitter"], levers["stain jitter"]) == ("HSV", "HSV + HED")


def test_later_rows_name_each_seeds_baseline():
    from edgehisto.release.breakhis_card_cv import later_cv_lines

    figure = {"mean": 0.8, "sd": 0.05}
    level = {"balanced_accuracy": figure, "sensitivity": figure, "specificity": figure, "folds": 3}

    def record(seed, **config):
        return {"config": {"folds": 3, "epochs": 6, "seed": seed, **config},
                "summary": {"idc": {"image": level, "patient": level}}}

    later = {"pretrain": {"val_metrics": {"balanced_accuracy": 0.738}},
             "cv": {"base": record(0), "hed": record(0, hed_augment=True), "base-s1": record(1)}}
    text = "\n".join(later_cv_lines(later, None, epochs=6))
    assert "base and base-s1 are their baselines, with no lever on (compare within a seed)" in text
    assert "Seeds: 0, 1" in text
    del later["cv"]["base-s1"]
    assert ": base is their baseline, with no lever on" in "\n".join(later_cv_lines(later, None, epochs=6))


def test_the_cv_target_line_shows_the_best_later_row_beside_its_other_seeds():
    from edgehisto.release.breakhis_card_cv import cv_target_line

    def record(mean, seed, **config):
        figure = {"mean": mean, "sd": 0.05}
        level = {"balanced_accuracy": figure, "sensitivity": figure, "specificity": figure, "folds": 3}
        return {"config": {"folds": 3, "epochs": 6, "seed": seed, **config},
                "summary": {"idc": {"image": level, "patient": level}}}

    card = {"target": {"cv": {"image": 0.85, "slide": 0.9}}, "cv": {"ref": record(0.79, 0)},
            "later_cv": {"cv": {"long": record(0.80, 0, epochs=12), "long-s1": record(0.75, 1, epochs=12),
                                "short-s1": record(0.77, 1)}}}
    line = cv_target_line(card)
    assert "The best later row, long, on its own backbone: 0.800 ± 0.050" in line
    assert "the same recipe under another seed: long-s1 (seed 1) 0.750 ± 0.050." in line
    assert "short-s1 (seed" not in line  # another recipe is not a replicate


def test_the_shipped_card_is_the_rendering_of_its_own_data(card):
    """MODEL_CARD.md is never edited by hand: it is ``render(model_card.json)``."""
    from edgehisto.release.breakhis_card import render

    assert (BUNDLE / "MODEL_CARD.md").read_text() == render(card) + "\n"


def test_the_caveat_beside_every_result_names_a_subtype_stage_worse_than_a_guess(card):
    """The kiosk shows ``caveat``: a subtype stage below chance on the test fields must be in it."""
    import copy

    from edgehisto.release.breakhis_card import caveat

    assert card["caveat"] == caveat(card)  # the shipped line is the one its data gives
    reported = card["parity"]["reported"]
    edited = copy.deepcopy(card)
    edited["parity"]["reported"]["benign_subtype"]["onnx_int8_accuracy"] = 0.24
    edited["parity"]["reported"]["malignant_subtype"]["onnx_int8_accuracy"] = 0.26
    line = caveat(edited)
    assert "its benign subtype is right on 24% of benign test fields, worse than a guess among 4" in line
    assert "malignant subtype" not in line
    edited["parity"]["reported"]["benign_subtype"]["onnx_int8_accuracy"] = 0.25
    assert "subtype" not in (caveat(edited) or "")
    assert ("benign subtype" in card["caveat"]) == (reported["benign_subtype"]["onnx_int8_accuracy"] < 0.25)


def test_breakhis_card_adds_later_cv_rows_to_a_copy_and_the_copy_still_verifies(tmp_path):
    import shutil

    from edgehisto.bundle.manifest import load_bundle

    copy = tmp_path / "breakhis"
    shutil.copytree(BUNDLE, copy)
    before = {p.name: p.read_bytes() for p in copy.rglob("*.onnx")}
    figure = {"mean": 0.91, "sd": 0.02}
    level = {"balanced_accuracy": figure, "sensitivity": figure, "specificity": figure, "folds": 3}
    cv = tmp_path / "cv-later-row" / "cv.json"
    cv.parent.mkdir()
    cv.write_text(json.dumps({"config": {"folds": 3, "seed": 1, "hed_augment": True}, "n_groups": 49,
                              "n_images": 1174, "summary": {"idc": {"image": level, "patient": level}}}))
    pretrain = tmp_path / "pretrain.json"
    pretrain.write_text(json.dumps({"val_metrics": {"balanced_accuracy": 0.738}}))

    refused = run("console script", "breakhis-card", "--bundle", copy, "--cv", cv, cwd=tmp_path)
    assert refused.returncode != 0 and "--pretrain" in refused.stderr
    assert (copy / "MODEL_CARD.md").read_bytes() == (BUNDLE / "MODEL_CARD.md").read_bytes()

    done = run("console script", "breakhis-card", "--bundle", copy, "--cv", cv, "--pretrain", pretrain, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = (copy / "MODEL_CARD.md").read_text()
    assert "### Levers measured after this model was trained" in text and "0.738" in text
    row = next(line for line in text.splitlines() if line.startswith("| cv-later-row (idc)"))
    assert "| HED |" in row and "| 1 | 3 | 0.910 ± 0.020 |" in row
    # A later row, on another backbone, is reported beside the CV target but does not meet it for this model.
    target = next(line for line in text.splitlines() if line.startswith("Grouped-CV binary balanced accuracy"))
    assert "**not met**" in target and "The best later row, cv-later-row, on its own backbone: 0.910" in target
    load_bundle(copy)  # every shipped file, the card included, matches its sha256
    assert {p.name: p.read_bytes() for p in copy.rglob("*.onnx")} == before
    assert not list(tmp_path.glob(".*staged"))


def test_breakhis_card_reports_a_later_runs_folds_at_int8_beside_its_fp32_row(tmp_path):
    import shutil

    copy = tmp_path / "breakhis"
    shutil.copytree(BUNDLE, copy)
    level = {"balanced_accuracy": {"mean": 0.8, "sd": 0.1}, "sensitivity": {"mean": 0.8, "sd": 0.1},
             "specificity": {"mean": 0.8, "sd": 0.1}, "folds": 2}
    run_dir = tmp_path / "cv-int8-row"
    run_dir.mkdir()
    (run_dir / "cv.json").write_text(json.dumps({"config": {"folds": 2, "seed": 1, "epochs": 6}, "n_groups": 49,
                                                 "n_images": 1174, "summary": {"idc": {"image": level,
                                                                                        "patient": level}}}))
    int8 = {**level, "balanced_accuracy": {"mean": 0.765, "sd": 0.05}}
    folds = [{"fold": k, "starts": {"idc": {"keras": {}, "fp32": {"agreement": {"top1": 1.0, "max_abs_dp": 1e-6}},
                                            "int8": {"agreement": {"top1": top1, "max_abs_dp": dp}}}}}
             for k, (top1, dp) in enumerate([(0.99, 0.02), (0.97, 0.06)])]
    (run_dir / "cv_precision.json").write_text(json.dumps({
        "folds": folds, "summary": {"idc": {"keras": {"image": level, "patient": level},
                                            "fp32": {"image": level, "patient": level},
                                            "int8": {"image": int8, "patient": level}}}}))
    pretrain = tmp_path / "pretrain.json"
    pretrain.write_text(json.dumps({"val_metrics": {"balanced_accuracy": 0.738}}))

    refused = run("console script", "breakhis-card", "--bundle", copy, "--pretrain", pretrain,
                  "--cv-precision", run_dir / "cv_precision.json", cwd=tmp_path)
    assert refused.returncode != 0 and "--cv too" in refused.stderr
    assert (copy / "MODEL_CARD.md").read_bytes() == (BUNDLE / "MODEL_CARD.md").read_bytes()

    done = run("console script", "breakhis-card", "--bundle", copy, "--pretrain", pretrain, "--cv",
               run_dir / "cv.json", "--cv-precision", run_dir / "cv_precision.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = (copy / "MODEL_CARD.md").read_text().splitlines()
    assert "| cv-int8-row (idc) | int8 | 0.765 ± 0.050 | 0.800 ± 0.100 | 0.970 | 0.0600 |" in lines
    assert "| cv-int8-row (idc) | keras | 0.800 ± 0.100 | 0.800 ± 0.100 | — | — |" in lines
    target = next(line for line in lines if line.startswith("Grouped-CV binary balanced accuracy"))
    assert "cv-int8-row was also measured at int8" in target


def test_a_refresh_that_fails_after_writing_puts_the_card_and_manifest_back(tmp_path, monkeypatch):
    import shutil

    from edgehisto.release import breakhis_model

    copy = tmp_path / "breakhis"
    shutil.copytree(BUNDLE, copy)
    kept = {name: (copy / name).read_bytes() for name in ("MODEL_CARD.md", "model_card.json", "manifest.json")}

    def refuse(path):
        raise RuntimeError("the bundle did not load")

    monkeypatch.setattr(breakhis_model, "SEED_SUBTYPE_ACCURACY", {"benign": 0.1, "malignant": 0.1})
    monkeypatch.setattr(breakhis_model, "load_bundle", refuse)
    with pytest.raises(RuntimeError, match="did not load"):
        breakhis_model.refresh_card(copy)
    assert {name: (copy / name).read_bytes() for name in kept} == kept
