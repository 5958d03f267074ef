"""Splits: patient-grouped (no leakage, stratified, deterministic), image-level, and their record."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from edgehisto.datasets.splits import (
    SIDES,
    image_level_split,
    patient_grouped_split,
    read_split,
    summarize_split,
    write_split,
)

REAL_IDC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "idc"


def synthetic_groups(seed: int, n_groups: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Labels and patient ids: patients of varied size and class mix, some single-class."""
    rng = np.random.default_rng(seed)
    labels, groups = [], []
    for patient in range(n_groups):
        size = int(rng.integers(20, 120))
        positive_rate = rng.choice([0.0, 1.0, rng.uniform(0.1, 0.9)])
        labels += (rng.random(size) < positive_rate).astype(int).tolist()
        groups += [f"p{patient:02d}"] * size
    return np.array(labels), np.array(groups)


@pytest.mark.parametrize("seed", range(6))
def test_no_group_is_on_two_sides(seed: int) -> None:
    labels, groups = synthetic_groups(seed)
    sides = patient_grouped_split(labels, groups, seed=seed)
    for group in np.unique(groups):
        assert len(set(sides[groups == group])) == 1, group


@pytest.mark.parametrize("seed", range(6))
def test_every_side_has_groups_and_both_classes(seed: int) -> None:
    labels, groups = synthetic_groups(seed)
    sides = patient_grouped_split(labels, groups, seed=seed)
    for side in SIDES:
        assert set(labels[sides == side]) == {0, 1}, side


@pytest.mark.parametrize("seed", range(6))
def test_grouped_split_roughly_keeps_the_class_mix_and_the_fractions(seed: int) -> None:
    labels, groups = synthetic_groups(seed)
    sides = patient_grouped_split(labels, groups, seed=seed)
    overall = labels.mean()
    for side, target in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
        assert abs(labels[sides == side].mean() - overall) < 0.2, side
        assert abs(np.mean(sides == side) - target) < 0.12, side


def test_grouped_split_is_deterministic_per_seed() -> None:
    labels, groups = synthetic_groups(3)
    first = patient_grouped_split(labels, groups, seed=7)
    again = patient_grouped_split(labels, groups, seed=7)
    assert np.array_equal(first, again)


def test_three_groups_are_enough_for_three_sides() -> None:
    labels = np.array([0, 1, 0, 1, 0, 1])
    groups = np.array(["a", "a", "b", "b", "c", "c"])
    sides = patient_grouped_split(labels, groups)
    assert sorted(sides[::2].tolist()) == sorted(SIDES)


def test_fewer_than_three_groups_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least 3 groups"):
        patient_grouped_split([0, 1, 0, 1], ["a", "a", "b", "b"])


def test_image_level_split_is_stratified_and_sized() -> None:
    labels = np.array([0] * 600 + [1] * 400)
    sides = image_level_split(labels, val_fraction=0.15, test_fraction=0.15, seed=0)
    for side, size in (("train", 700), ("val", 150), ("test", 150)):
        assert abs(np.sum(sides == side) - size) <= 1
        assert abs(labels[sides == side].mean() - 0.4) < 0.01
    assert np.array_equal(
        sides, image_level_split(labels, val_fraction=0.15, test_fraction=0.15, seed=0)
    )


def test_summary_counts_classes_and_flags_shared_groups() -> None:
    labels = np.array([0, 1, 0, 1, 1])
    groups = np.array(["a", "a", "b", "c", "c"])
    sides = np.array(["train", "train", "val", "test", "train"])
    summary = summarize_split(sides, labels, groups, key="patient", method="image_level", seed=1)
    data = summary.to_dict()
    assert data["class_counts"] == {
        "train": {"0": 1, "1": 2},
        "val": {"0": 1, "1": 0},
        "test": {"0": 0, "1": 1},
    }
    assert data["groups"] == {"train": ["a", "c"], "val": ["b"], "test": ["c"]}
    assert data["shared_groups"] == ["c"]
    assert data["n_groups"] == {"train": 2, "val": 1, "test": 1}
    json.dumps(data)


def test_written_split_reads_back(tmp_path: Path) -> None:
    labels, groups = synthetic_groups(1)
    relpaths = [f"{g}/{y}/tile{i}.png" for i, (g, y) in enumerate(zip(groups, labels, strict=True))]
    sides = patient_grouped_split(labels, groups, seed=1)
    summary = summarize_split(sides, labels, groups, "patient", "patient_grouped", 1)
    write_split(tmp_path / "run", relpaths, labels, groups, sides, summary)
    rows = read_split(tmp_path / "run")
    assert [row["relpath"] for row in rows] == relpaths
    assert [row["label"] for row in rows] == labels.tolist()
    assert [row["side"] for row in rows] == sides.tolist()
    record = json.loads((tmp_path / "run" / "split.json").read_text())
    assert (record["method"], record["key"], record["seed"]) == ("patient_grouped", "patient", 1)
    assert record["class_counts"] == summary.to_dict()["class_counts"]


def _manifest_patients() -> list[str]:
    """The patient column of the real IDC folder's manifest.csv (the source of its counts)."""
    with open(REAL_IDC / "manifest.csv", newline="") as handle:
        return [row["patient"] for row in csv.DictReader(handle)]


@pytest.mark.shared_data
@pytest.mark.skipif(not REAL_IDC.is_dir(), reason="real IDC data (../shared/data/idc) absent")
def test_real_idc_default_split_keeps_patients_whole_and_both_classes_per_side() -> None:
    from edgehisto.datasets.idc import scan_idc

    dataset = scan_idc(REAL_IDC)
    labels, patients = dataset.labels, dataset.patients
    sides = patient_grouped_split(labels, patients, seed=0)
    summary = summarize_split(sides, labels, patients, "patient", "patient_grouped", 0)
    assert summary.shared_groups == []
    assert sum(len(names) for names in summary.groups.values()) == len(set(_manifest_patients()))
    # Every held-out side has both classes (many patients hold only a sample of each).
    for side in SIDES:
        assert min(summary.class_counts[side].values()) > 0, summary.class_counts
