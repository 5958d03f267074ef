"""The BreaKHis reader: names parsed, folders cross-checked, masks attached, the real file list."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgehisto.datasets.breakhis import (
    ALL_SUBTYPES,
    SUBTYPE_NAMES,
    looks_like_breakhis,
    scan_breakhis,
    split_groups,
)
from edgehisto.errors import DatasetLayoutError

FILELIST = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "breakhis" / "filelist.csv"
)
SHARED_BREAKHIS = FILELIST.parent
BREAST = "BreaKHis_v1/histology_slides/breast"
EXAMPLE = f"{BREAST}/benign/SOB/adenosis/SOB_B_A_14-22549AB/40X/SOB_B_A-14-22549AB-40-001.png"


def relpath_of(name: str) -> str:
    """Where a correctly named BreaKHis image sits, relative to the folder above BreaKHis_v1."""
    binary, subtype = name.split("-")[0].split("_")[1:]
    patient = name.split("-", 1)[1].rsplit("-", 2)[0]
    mag = name.rsplit("-", 2)[1]
    label = {"B": "benign", "M": "malignant"}[binary]
    folder = f"SOB_{binary}_{subtype}_{patient}"
    return f"{BREAST}/{label}/SOB/{SUBTYPE_NAMES[subtype]}/{folder}/{mag}X/{name}"


def write_image(root: Path, relpath: str, size: tuple[int, int] = (46, 70)) -> Path:
    """Write a small RGB png (height, width) at root/relpath and return its path."""
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((*size, 3), 200, dtype=np.uint8))
    return path


@pytest.fixture
def tiny_breakhis(tmp_path: Path) -> Path:
    """Three benign and two malignant images, one with a mask, plus ignorable metadata."""
    for name in (
        "SOB_B_A-14-22549AB-40-001.png",
        "SOB_B_A-14-22549AB-100-001.png",
        "SOB_B_F-14-14134-400-012.png",
        "SOB_M_DC-14-13412-40-001.png",
        "SOB_M_LC-14-13412-200-003.png",
    ):
        write_image(tmp_path, relpath_of(name))
    write_image(tmp_path, relpath_of("SOB_M_DC-14-13412-40-001.png")[: -len(".png")] + "_mask.png")
    (tmp_path / "BreaKHis_v1" / "README.txt").write_text("synthetic\n")
    return tmp_path


def test_the_example_name_is_parsed_into_labels_patient_slide_and_magnification(
    tiny_breakhis: Path,
) -> None:
    dataset = scan_breakhis(tiny_breakhis)
    tile = next(t for t in dataset.tiles if t.relpath == EXAMPLE)
    assert (tile.label, tile.binary, tile.subtype, tile.subtype_index) == ("benign", 0, "A", 0)
    assert (tile.magnification, tile.seq) == (40, 1)
    assert (tile.patient, tile.slide) == ("14-22549AB", "14-22549")
    assert tile.patient_folder == "SOB_B_A_14-22549AB"
    assert (tile.width, tile.height) == (70, 46)
    assert dataset.problems == []


def test_arrays_and_counts_follow_the_tiles(tiny_breakhis: Path) -> None:
    dataset = scan_breakhis(tiny_breakhis)
    assert len(dataset) == 5
    assert dataset.binary_labels.tolist() == [0, 0, 0, 1, 1]
    assert dataset.subtypes.tolist() == ["A", "A", "F", "DC", "LC"]
    assert dataset.subtype_indices.tolist() == [0, 0, 1, 0, 1]
    assert sorted(dataset.magnifications.tolist()) == [40, 40, 100, 200, 400]
    assert dataset.binary_counts == {"benign": 3, "malignant": 2}
    assert list(dataset.subtype_counts) == list(ALL_SUBTYPES)
    assert dataset.subtype_counts["A"] == 2 and dataset.subtype_counts["PC"] == 0
    assert dataset.magnification_counts == {40: 2, 100: 1, 200: 1, 400: 1}
    assert len(dataset.patient_folder_counts) == 4
    assert dataset.slide_counts == {"14-13412": 2, "14-14134": 1, "14-22549": 2}
    assert dataset.slide_folders["14-13412"] == ["SOB_M_DC_14-13412", "SOB_M_LC_14-13412"]


def test_split_groups_by_slide_merge_what_patient_folders_keep_apart(tiny_breakhis: Path) -> None:
    dataset = scan_breakhis(tiny_breakhis)
    assert len(set(split_groups(dataset).tolist())) == 3
    assert len(set(split_groups(dataset, "patient_folder").tolist())) == 4
    with pytest.raises(ValueError, match="unknown split key"):
        split_groups(dataset, "patient")


@pytest.mark.parametrize(
    "below",
    ["", "BreaKHis_v1", "BreaKHis_v1/histology_slides", BREAST],
    ids=["above", "BreaKHis_v1", "histology_slides", "breast"],
)
def test_the_root_may_be_any_folder_down_to_breast(tiny_breakhis: Path, below: str) -> None:
    root = tiny_breakhis / below
    assert looks_like_breakhis(root)
    dataset = scan_breakhis(root)
    assert len(dataset) == 5
    assert all((root / tile.relpath) == tile.path for tile in dataset.tiles)


def test_masks_are_attached_to_their_tile_and_not_counted(tiny_breakhis: Path) -> None:
    dataset = scan_breakhis(tiny_breakhis)
    masked = [tile for tile in dataset.tiles if tile.mask_path is not None]
    assert [tile.path.name for tile in masked] == ["SOB_M_DC-14-13412-40-001.png"]
    assert masked[0].mask_path.name == "SOB_M_DC-14-13412-40-001_mask.png"
    assert dataset.n_masks == 1 and len(dataset) == 5


def test_a_mask_without_its_tile_is_reported(tiny_breakhis: Path) -> None:
    orphan = relpath_of("SOB_M_DC-14-13412-40-002.png")[: -len(".png")] + "_mask.png"
    write_image(tiny_breakhis, orphan)
    dataset = scan_breakhis(tiny_breakhis)
    (problem,) = dataset.problems
    assert problem.path.name == "SOB_M_DC-14-13412-40-002_mask.png"
    assert "without a usable tile" in problem.reason


def test_the_magnification_filter_keeps_only_those_tiles_and_masks(tiny_breakhis: Path) -> None:
    dataset = scan_breakhis(tiny_breakhis, magnifications={40, 400})
    assert sorted(dataset.magnifications.tolist()) == [40, 40, 400]
    assert dataset.n_masks == 1 and dataset.problems == []
    assert scan_breakhis(tiny_breakhis, magnifications={200}).n_masks == 0
    with pytest.raises(ValueError, match="magnifications"):
        scan_breakhis(tiny_breakhis, magnifications={50})


@pytest.mark.parametrize(
    ("relpath", "found", "in_name"),
    [
        (f"{BREAST}/malignant/SOB/adenosis/SOB_B_A_14-22549AB/40X/SOB_B_A-14-22549AB-40-002.png",
         "'malignant'", "'B'"),
        (f"{BREAST}/benign/SOB/fibroadenoma/SOB_B_A_14-22549AB/40X/SOB_B_A-14-22549AB-40-002.png",
         "'fibroadenoma'", "subtype 'A'"),
        (f"{BREAST}/benign/SOB/adenosis/SOB_B_A_14-22549CD/40X/SOB_B_A-14-22549AB-40-002.png",
         "'SOB_B_A_14-22549CD'", "patient '14-22549AB'"),
        (f"{BREAST}/benign/SOB/adenosis/SOB_B_A_14-22549AB/100X/SOB_B_A-14-22549AB-40-002.png",
         "'100X'", "magnification 40"),
        (f"{BREAST}/benign/CNB/adenosis/SOB_B_A_14-22549AB/40X/SOB_B_A-14-22549AB-40-002.png",
         "'CNB'", "'SOB'"),
    ],
    ids=["binary", "subtype", "patient", "magnification", "procedure"],
)
def test_a_folder_that_disagrees_with_the_name_is_reported_with_both_values(
    tiny_breakhis: Path, relpath: str, found: str, in_name: str
) -> None:
    write_image(tiny_breakhis, relpath)
    dataset = scan_breakhis(tiny_breakhis)
    assert len(dataset) == 5
    (problem,) = dataset.problems
    assert problem.path.name == "SOB_B_A-14-22549AB-40-002.png"
    assert found in problem.reason and in_name in problem.reason, problem.reason


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("SOB_B_XX-14-22549AB-40-002.png", "unknown subtype"),
        ("SOB_B_DC-14-22549AB-40-002.png", "not benign"),
        ("SOB_B_A-14-22549AB-50-002.png", "magnification 50"),
        ("thumbnail.png", "does not match"),
        ("SOB_B_A-14-22549AB-40-002.tif", "not a .png"),
    ],
)
def test_a_name_that_is_wrong_in_itself_is_reported(
    tiny_breakhis: Path, name: str, words: str
) -> None:
    folder = Path(EXAMPLE).parent
    (tiny_breakhis / folder / name).write_bytes(b"x")
    dataset = scan_breakhis(tiny_breakhis)
    (problem,) = dataset.problems
    assert problem.path.name == name
    assert words in problem.reason and "\n" not in problem.reason


@pytest.mark.parametrize(
    "content", [b"", b"not a png\n", b"truncated"], ids=["empty", "text", "truncated"]
)
def test_an_unreadable_image_is_reported_not_fatal(tiny_breakhis: Path, content: bytes) -> None:
    bad = tiny_breakhis / relpath_of("SOB_M_DC-14-13412-40-002.png")
    good = (tiny_breakhis / EXAMPLE).read_bytes()
    bad.write_bytes(good[: len(good) // 2] if content == b"truncated" else content)
    dataset = scan_breakhis(tiny_breakhis)
    assert len(dataset) == 5
    (problem,) = dataset.problems
    assert problem.path == bad and problem.reason.startswith("unreadable image")
    # without reading sizes the file is not opened, so it counts as a tile
    assert len(scan_breakhis(tiny_breakhis, read_sizes=False)) == 6


def test_without_reading_sizes_tiles_have_no_size(tiny_breakhis: Path) -> None:
    dataset = scan_breakhis(tiny_breakhis, read_sizes=False)
    assert {(tile.width, tile.height) for tile in dataset.tiles} == {(None, None)}
    assert dataset.off_size == []


def test_images_other_than_700x460_are_listed(tiny_breakhis: Path) -> None:
    full = write_image(tiny_breakhis, relpath_of("SOB_B_F-14-14134-400-013.png"), size=(460, 700))
    dataset = scan_breakhis(tiny_breakhis)
    assert len(dataset) == 6
    assert full not in {tile.path for tile in dataset.off_size}
    assert {(tile.width, tile.height) for tile in dataset.off_size} == {(70, 46)}


def test_progress_is_reported_per_candidate_tile(tiny_breakhis: Path) -> None:
    calls: list[tuple[int, int]] = []
    scan_breakhis(tiny_breakhis, progress=lambda done, total, _label: calls.append((done, total)))
    assert calls == [(i, 5) for i in range(1, 6)]


def test_a_root_without_a_breast_folder_raises_a_layout_error(tmp_path: Path) -> None:
    write_image(tmp_path, "pictures/cat.png")
    assert not looks_like_breakhis(tmp_path)
    with pytest.raises(DatasetLayoutError, match="'breast' folder"):
        scan_breakhis(tmp_path)


def test_a_breast_folder_without_images_raises_a_layout_error(tmp_path: Path) -> None:
    write_image(tmp_path, f"{BREAST}/benign/SOB/adenosis/notes.png")
    assert not looks_like_breakhis(tmp_path)
    with pytest.raises(DatasetLayoutError, match="no BreaKHis images"):
        scan_breakhis(tmp_path)


@pytest.mark.shared_data
@pytest.mark.skipif(not FILELIST.is_file(), reason="../shared/data/breakhis/filelist.csv absent")
def test_the_published_file_list_reads_completely_with_its_known_counts(tmp_path: Path) -> None:
    with open(FILELIST, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    placeholder = write_image(tmp_path, "placeholder.png", size=(2, 2))
    for row in rows:  # one 2x2 PNG, hard-linked (copied where links fail) into every place
        target = tmp_path / "data" / row["relpath"]
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(placeholder, target)
        except OSError:
            target.write_bytes(placeholder.read_bytes())
    dataset = scan_breakhis(tmp_path / "data")
    assert dataset.problems == []
    assert len(dataset) == 7909
    assert dataset.binary_counts == {"benign": 2480, "malignant": 5429}
    assert dataset.subtype_counts == {
        "A": 444, "F": 1014, "PT": 453, "TA": 569,
        "DC": 3451, "LC": 626, "MC": 792, "PC": 560,
    }
    assert dataset.magnification_counts == {40: 1995, 100: 2081, 200: 2013, 400: 1820}
    assert len(dataset.patient_folder_counts) == 82
    assert len(dataset.slide_counts) == 70
    assert len(set(split_groups(dataset, "patient_folder").tolist())) == 82
    assert len(set(split_groups(dataset, "slide").tolist())) == 70
    assert sorted(dataset.relpaths) == sorted(row["relpath"] for row in rows)
    by_relpath = {tile.relpath: tile for tile in dataset.tiles}
    for row in rows:
        tile = by_relpath[row["relpath"]]
        assert (tile.label, f"{tile.magnification}X") == (row["label"], row["magnification"])
        assert SUBTYPE_NAMES[tile.subtype] == row["tumor_subtype"]


def _manifest_folder(root: Path, rows: list[tuple[str, str, str, str, str]]) -> None:
    """A manifest-listed folder: (label, subtype name, patient folder, slide, magnification) per 224x224 field."""
    import csv

    import cv2

    root.mkdir(parents=True)
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["relpath", "label", "tumor_subtype", "patient_folder", "slide", "magnification",
                         "width", "height"])
        for i, (label, subtype, folder, slide, mag) in enumerate(rows):
            relpath = f"200X-224/{label}/{subtype}/{folder}/{folder}-200-i{i:03d}.png"
            (root / relpath).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / relpath), np.full((224, 224, 3), 180, np.uint8))
            writer.writerow([relpath, label, subtype, folder, slide, mag, 224, 224])


def test_several_roots_read_as_one_dataset_with_the_slide_key_across_them(tmp_path):
    from edgehisto.datasets.synth_breakhis import synthesize_breakhis
    from edgehisto.metrics.scores import grouped_folds

    synthesize_breakhis(tmp_path / "real", 16, seed=0)
    v1 = scan_breakhis(tmp_path / "real")
    slide = v1.tiles[0].slide  # a slide of the first root, met again in the manifest-listed root
    folder = v1.tiles[0].patient_folder
    label, name = v1.tiles[0].label, SUBTYPE_NAMES[v1.tiles[0].subtype]
    _manifest_folder(tmp_path / "more", [(label, name, folder, slide, "200X")] * 3
                     + [("malignant", "ductal_carcinoma", "SOB_M_DC_14-99999", "14-99999", "200X")] * 2)
    both = scan_breakhis(tmp_path)
    assert len(both) == len(v1) + 5 and both.problems == []
    assert {t.relpath.split("/")[0] for t in both.tiles} == {"real", "more"}
    squashed = [t for t in both.tiles if t.squashed]
    assert len(squashed) == 5 and all((t.width, t.height) == (224, 224) and t.magnification == 200 for t in squashed)
    assert all(not t.squashed for t in both.tiles if t.relpath.startswith("real/"))
    # A slide stays on one side across roots.
    groups = both.slides
    for held in grouped_folds(both.binary_labels, groups, 3, seed=0):
        inside = set(groups[held])
        outside = set(groups[np.setdiff1d(np.arange(len(groups)), held)])
        assert not inside & outside
    assert looks_like_breakhis(tmp_path)


def test_a_manifest_row_that_contradicts_its_folder_is_a_problem_not_a_field(tmp_path):
    _manifest_folder(tmp_path / "more", [("benign", "ductal_carcinoma", "SOB_M_DC_14-99999", "14-99999", "200X"),
                                         ("malignant", "ductal_carcinoma", "SOB_M_DC_14-99999", "14-88888", "200X"),
                                         ("malignant", "ductal_carcinoma", "SOB_M_DC_14-99999", "14-99999", "200X")])
    dataset = scan_breakhis(tmp_path / "more")
    assert len(dataset) == 1
    reasons = sorted(p.reason for p in dataset.problems)
    assert reasons == ["manifest.csv: label 'benign' disagrees with SOB_M_DC_14-99999",
                       "manifest.csv: slide '14-88888' is not the slide of SOB_M_DC_14-99999"]


@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED_BREAKHIS / "more" / "manifest.csv").is_file(), reason="../shared/data/breakhis absent")
def test_the_shared_breakhis_folders_read_as_their_manifests_say():
    import csv

    dataset = scan_breakhis(SHARED_BREAKHIS)
    with open(SHARED_BREAKHIS / "more" / "manifest.csv", newline="") as handle:
        more = list(csv.DictReader(handle))
    with open(SHARED_BREAKHIS / "real" / "manifest.csv", newline="") as handle:
        real = list(csv.DictReader(handle))
    assert len(dataset) == len(more) + len(real) and dataset.problems == []
    assert sum(t.squashed for t in dataset.tiles) == sum(r["width"] == r["height"] == "224" for r in more)
    slides = {r["slide"] for r in more} | {t.slide for t in dataset.tiles if t.relpath.startswith("real/")}
    assert set(dataset.slide_counts) == slides
