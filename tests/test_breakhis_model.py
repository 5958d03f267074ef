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
    from edgehisto.release.breakhis_card import _cv_lines

    def record(**config):
        figure = {"mean": 0.8, "sd": 0.05}
        level = {"balanced_accuracy": figure, "sensitivity": figure, "specificity": figure, "folds": 3}
        return {"config": {"folds": 3, "epochs": 6, "learning_rate": 1e-4, **config}, "n_groups": 49,
                "n_images": 1174, "summary": {"idc": {"image": level, "patient": level}}}

    lines = _cv_lines({"old": record(class_weights=True, stain_augment=True),
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
