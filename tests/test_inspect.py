"""``inspect``: the library summary and the ``edgehisto inspect`` command."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgehisto.cli import cli, main
from edgehisto.errors import DatasetLayoutError
from edgehisto.train.inspect_data import inspect_dataset


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
