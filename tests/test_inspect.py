"""``inspect``: the library summary and the ``edgehisto inspect`` command."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgehisto.cli import cli, main
from edgehisto.datasets.inspect_data import inspect_dataset
from edgehisto.errors import DatasetLayoutError


def write_tile(root: Path, relpath: str, size: tuple[int, int] = (50, 50)) -> None:
    """Write a small RGB png (height, width) at root/relpath."""
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((*size, 3), 180, dtype=np.uint8))


@pytest.fixture
def tiny_idc(tmp_path: Path) -> Path:
    """Two patients, one undersized tile, one mask, one stray png."""
    root = tmp_path / "idc"
    write_tile(root, "10001/0/10001_idx5_x1_y1_class0.png")
    write_tile(root, "10001/1/10001_idx5_x51_y1_class1.png")
    write_tile(root, "10001/1/10001_idx5_x51_y1_class1_mask.png")
    write_tile(root, "10002/1/10002_idx5_x1_y51_class1.png", size=(50, 20))
    write_tile(root, "10002/1/preview.png")
    return root


def test_library_summary_of_a_tiny_idc_tree(tiny_idc: Path) -> None:
    summary = inspect_dataset(tiny_idc)
    assert summary["layout"] == "idc"
    assert summary["n_tiles"] == 3
    assert summary["class_counts"] == {"0": 1, "1": 2}
    assert summary["class_names"] == {"0": "IDC-negative", "1": "IDC-positive"}
    assert summary["patients"] == {"10001": {"0": 1, "1": 1}, "10002": {"0": 0, "1": 1}}
    assert summary["n_undersized"] == 1
    assert summary["undersized"] == [
        {"relpath": "10002/1/10002_idx5_x1_y51_class1.png", "width": 20, "height": 50}
    ]
    assert summary["n_masks"] == 1
    assert summary["n_problems"] == 1
    assert summary["problems"][0]["path"] == "10002/1/preview.png"
    json.dumps(summary)


def test_library_rejects_a_directory_in_no_known_layout(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(DatasetLayoutError, match="no known dataset layout"):
        inspect_dataset(tmp_path)


def test_cli_prints_a_readable_table(tiny_idc: Path) -> None:
    result = CliRunner().invoke(cli, ["inspect", str(tiny_idc)])
    assert result.exit_code == 0, result.output
    assert "layout:   idc" in result.output
    assert "1 (IDC-positive)" in result.output
    assert "10002" in result.output
    assert "10002_idx5_x1_y51_class1.png  20x50" in result.output
    assert "preview.png" in result.output


def test_cli_prints_json_on_request(tiny_idc: Path) -> None:
    result = CliRunner().invoke(cli, ["inspect", str(tiny_idc), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["n_tiles"] == 3
    assert summary["class_counts"] == {"0": 1, "1": 2}


def test_cli_on_a_non_dataset_directory_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(SystemExit) as stop:
        main(["inspect", str(tmp_path)])
    assert stop.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: no known dataset layout")


BREAST = "BreaKHis_v1/histology_slides/breast"


@pytest.fixture
def tiny_breakhis(tmp_path: Path) -> Path:
    """Four BreaKHis images in three folders of two slides, one mask, one misplaced image."""
    root = tmp_path / "breakhis"
    benign = f"{BREAST}/benign/SOB/adenosis/SOB_B_A_14-22549AB"
    ductal = f"{BREAST}/malignant/SOB/ductal_carcinoma/SOB_M_DC_14-13412"
    lobular = f"{BREAST}/malignant/SOB/lobular_carcinoma/SOB_M_LC_14-13412"
    write_tile(root, f"{benign}/40X/SOB_B_A-14-22549AB-40-001.png", size=(46, 70))
    write_tile(root, f"{benign}/400X/SOB_B_A-14-22549AB-400-001.png", size=(460, 700))
    write_tile(root, f"{ductal}/40X/SOB_M_DC-14-13412-40-001.png", size=(460, 700))
    write_tile(root, f"{ductal}/40X/SOB_M_DC-14-13412-40-001_mask.png", size=(460, 700))
    write_tile(root, f"{lobular}/100X/SOB_M_LC-14-13412-100-001.png", size=(460, 700))
    write_tile(root, f"{lobular}/200X/SOB_M_LC-14-13412-100-002.png", size=(460, 700))
    return root


def test_library_summary_of_a_tiny_breakhis_tree(tiny_breakhis: Path) -> None:
    summary = inspect_dataset(tiny_breakhis)
    assert summary["layout"] == "breakhis"
    assert summary["n_tiles"] == 4
    assert summary["binary_counts"] == {"benign": 2, "malignant": 2}
    assert summary["subtype_counts"]["A"] == 2 and summary["subtype_counts"]["PC"] == 0
    assert summary["magnification_counts"] == {"40": 2, "100": 1, "200": 0, "400": 1}
    assert summary["subtypes"]["DC"] == {
        "name": "ductal_carcinoma",
        "label": "malignant",
        "magnification_counts": {"40": 1, "100": 0, "200": 0, "400": 0},
        "total": 1,
    }
    assert summary["n_patient_folders"] == 3 and summary["n_slides"] == 2
    assert summary["patient_folders"]["SOB_B_A_14-22549AB"]["slide"] == "14-22549"
    assert summary["slides"]["14-13412"] == {
        "tiles": 2,
        "patient_folders": ["SOB_M_DC_14-13412", "SOB_M_LC_14-13412"],
    }
    assert summary["split_key"] == "slide"
    assert summary["n_off_size"] == 1 and summary["off_size"][0]["width"] == 70
    assert summary["n_masks"] == 1
    assert summary["n_problems"] == 1
    assert summary["problems"][0]["path"].endswith("200X/SOB_M_LC-14-13412-100-002.png")
    assert "'200X'" in summary["problems"][0]["reason"]
    assert json.loads(json.dumps(summary)) == summary


@pytest.mark.parametrize("below", ["", "BreaKHis_v1", BREAST], ids=["above", "v1", "breast"])
def test_breakhis_is_recognised_from_any_folder_down_to_breast(
    tiny_breakhis: Path, below: str
) -> None:
    summary = inspect_dataset(tiny_breakhis / below)
    assert (summary["layout"], summary["n_tiles"]) == ("breakhis", 4)


def test_cli_prints_breakhis_tables(tiny_breakhis: Path) -> None:
    result = CliRunner().invoke(cli, ["inspect", str(tiny_breakhis)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "layout:   breakhis" in lines
    header = next(line for line in lines if line.startswith("subtype"))
    assert header.split()[-5:] == ["40X", "100X", "200X", "400X", "total"]
    row = next(line for line in lines if line.startswith("DC (ductal_carcinoma)"))
    assert row.split()[-6:] == ["malignant", "1", "0", "0", "0", "1"]
    assert "3 patient folders, 2 numeric slide ids" in result.output
    assert "  14-13412: SOB_M_DC_14-13412, SOB_M_LC_14-13412" in lines
    folder = next(line for line in lines if line.startswith("SOB_B_A_14-22549AB"))
    assert folder.split() == ["SOB_B_A_14-22549AB", "14-22549", "1", "0", "0", "1", "2"]
    assert "SOB_B_A-14-22549AB-40-001.png  70x46" in result.output
    assert "masks attached: 1" in lines
    assert "SOB_M_LC-14-13412-100-002.png" in result.output


def test_cli_prints_breakhis_json_on_request(tiny_breakhis: Path) -> None:
    result = CliRunner().invoke(cli, ["inspect", str(tiny_breakhis), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["layout"] == "breakhis"
    assert summary["binary_counts"] == {"benign": 2, "malignant": 2}
    assert summary["n_slides"] == 2
