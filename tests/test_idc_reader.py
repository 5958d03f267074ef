"""The IDC reader: names parsed, problems reported (never fatal), masks attached, real data."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgehisto.datasets.idc import scan_idc
from edgehisto.errors import DatasetLayoutError

REAL_IDC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "idc"


def write_tile(root: Path, relpath: str, size: tuple[int, int] = (50, 50)) -> Path:
    """Write a small RGB png (height, width) at root/relpath and return its path."""
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((*size, 3), 200, dtype=np.uint8)
    assert cv2.imwrite(str(path), image)
    return path


@pytest.fixture
def tiny_idc(tmp_path: Path) -> Path:
    """Two patients, both classes, one undersized tile and one mask."""
    write_tile(tmp_path, "10001/0/10001_idx5_x1_y51_class0.png")
    write_tile(tmp_path, "10001/1/10001_idx5_x51_y101_class1.png")
    write_tile(tmp_path, "10001/1/10001_idx5_x51_y101_class1_mask.png")
    write_tile(tmp_path, "10002/0/10002_idx5_x101_y1_class0.png", size=(35, 50))
    (tmp_path / "README.md").write_text("synthetic\n")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    return tmp_path


def test_file_names_are_parsed_into_patient_position_and_label(tiny_idc: Path) -> None:
    dataset = scan_idc(tiny_idc)
    by_name = {tile.path.name: tile for tile in dataset.tiles}
    tile = by_name["10001_idx5_x51_y101_class1.png"]
    assert (tile.patient, tile.x, tile.y, tile.label) == ("10001", 51, 101, 1)
    assert tile.relpath == "10001/1/10001_idx5_x51_y101_class1.png"
    assert (tile.width, tile.height) == (50, 50)
    assert dataset.labels.tolist() == [0, 1, 0]
    assert dataset.patients.tolist() == ["10001", "10001", "10002"]
    assert dataset.class_counts == {0: 2, 1: 1}
    assert dataset.patient_class_counts == {"10001": {0: 1, 1: 1}, "10002": {0: 1, 1: 0}}
    assert dataset.problems == []


def test_metadata_files_are_ignored_silently(tiny_idc: Path) -> None:
    dataset = scan_idc(tiny_idc)
    assert len(dataset) == 3
    assert dataset.problems == []


def test_mask_files_are_attached_to_their_tile_and_not_counted(tiny_idc: Path) -> None:
    dataset = scan_idc(tiny_idc)
    masked = [tile for tile in dataset.tiles if tile.mask_path is not None]
    assert [tile.path.name for tile in masked] == ["10001_idx5_x51_y101_class1.png"]
    assert masked[0].mask_path.name == "10001_idx5_x51_y101_class1_mask.png"
    assert dataset.n_masks == 1
    assert all("_mask" not in tile.relpath for tile in dataset.tiles)


def test_a_mask_without_its_tile_is_reported(tiny_idc: Path) -> None:
    write_tile(tiny_idc, "10002/1/10002_idx5_x1_y1_class1_mask.png")
    dataset = scan_idc(tiny_idc)
    assert len(dataset) == 3
    assert [p.path.name for p in dataset.problems] == ["10002_idx5_x1_y1_class1_mask.png"]


def test_undersized_tiles_are_kept_and_counted(tiny_idc: Path) -> None:
    dataset = scan_idc(tiny_idc)
    assert [(t.relpath, t.width, t.height) for t in dataset.undersized] == [
        ("10002/0/10002_idx5_x101_y1_class0.png", 50, 35)
    ]


def test_a_label_folder_that_disagrees_with_the_name_is_reported_and_excluded(
    tiny_idc: Path,
) -> None:
    write_tile(tiny_idc, "10002/1/10002_idx5_x1_y1_class0.png")
    dataset = scan_idc(tiny_idc)
    assert len(dataset) == 3
    (problem,) = dataset.problems
    assert problem.path.name == "10002_idx5_x1_y1_class0.png"
    assert "'1'" in problem.reason and "class 0" in problem.reason


def test_a_patient_folder_that_disagrees_with_the_name_is_reported_and_excluded(
    tiny_idc: Path,
) -> None:
    write_tile(tiny_idc, "10002/0/10009_idx5_x1_y1_class0.png")
    dataset = scan_idc(tiny_idc)
    assert "10009" not in dataset.patients
    (problem,) = dataset.problems
    assert "'10002'" in problem.reason and "'10009'" in problem.reason


def test_stray_png_files_are_reported(tiny_idc: Path) -> None:
    write_tile(tiny_idc, "10001/0/thumbnail.png")
    write_tile(tiny_idc, "loose_idx5_x1_y1_class0.png")
    dataset = scan_idc(tiny_idc)
    assert len(dataset) == 3
    reasons = {p.path.name: p.reason for p in dataset.problems}
    assert set(reasons) == {"thumbnail.png", "loose_idx5_x1_y1_class0.png"}
    assert "does not match" in reasons["thumbnail.png"]
    assert "\n" not in "".join(reasons.values())


@pytest.mark.parametrize("content", [b"", b"this is not a png\n"], ids=["empty", "text"])
def test_unreadable_png_is_reported_not_fatal(tiny_idc: Path, content: bytes) -> None:
    bad = tiny_idc / "10002" / "1" / "10002_idx5_x1_y1_class1.png"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(content)
    dataset = scan_idc(tiny_idc)
    assert len(dataset) == 3
    (problem,) = dataset.problems
    assert problem.path == bad
    assert problem.reason.startswith("unreadable image")


def test_progress_is_reported_per_tile(tiny_idc: Path) -> None:
    calls: list[tuple[int, int]] = []
    scan_idc(tiny_idc, progress=lambda done, total, _label: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_a_missing_root_raises_a_layout_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match="not found"):
        scan_idc(tmp_path / "nope")


def test_a_directory_without_tiles_raises_a_layout_error(tmp_path: Path) -> None:
    write_tile(tmp_path, "pictures/cat.png")
    with pytest.raises(DatasetLayoutError, match="no IDC tiles"):
        scan_idc(tmp_path)


@pytest.mark.shared_data
@pytest.mark.skipif(not REAL_IDC.is_dir(), reason="real IDC data (../shared/data/idc) absent")
def test_the_real_idc_subset_reads_completely_and_matches_its_manifest() -> None:
    dataset = scan_idc(REAL_IDC)
    # Every count comes from the folder's own manifest.csv, which grows with the folder.
    with open(REAL_IDC / "manifest.csv", newline="") as handle:
        manifest = {row["relpath"]: row for row in csv.DictReader(handle)}
    assert len(dataset) == len(manifest)
    assert dataset.class_counts == dict(sorted(Counter(int(r["class"]) for r in manifest.values()).items()))
    assert len(dataset.patient_class_counts) == len({r["patient"] for r in manifest.values()})
    assert len(dataset.undersized) == sum((r["width"], r["height"]) != ("50", "50") for r in manifest.values())
    assert dataset.problems == []
    assert set(manifest) == set(dataset.relpaths)
    for tile in dataset.tiles:
        row = manifest[tile.relpath]
        assert (tile.width, tile.height) == (int(row["width"]), int(row["height"]))
        assert (tile.patient, tile.label) == (row["patient"], int(row["class"]))
