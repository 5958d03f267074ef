"""What a newcomer meets in the first hour, through the installed command: names, sizes, empty input."""

from __future__ import annotations

from pathlib import Path

from tests.test_exit_codes import run


def test_a_misspelt_model_name_suggests_the_nearest_one_in_one_line(good_tile, tmp_path):
    done = run("console script", "classify", good_tile, "--model", "breakhs", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: no embedded model or bundle directory named 'breakhs'; did you mean 'breakhis'? "
        "(embedded models: breakhis, idc, idc-default)"]


def test_model_names_are_case_insensitive_in_the_cli_and_in_the_library(good_tile, tmp_path):
    upper = run("console script", "classify", good_tile, "--model", "IDC", "--format", "csv", cwd=tmp_path)
    lower = run("console script", "classify", good_tile, "--model", "idc", "--format", "csv", cwd=tmp_path)
    assert upper.returncode == 0 and upper.stdout == lower.stdout
    from edgehisto.runtime.classifier import Classifier

    assert Classifier("idc").bundle.path.name == Classifier("IDC-Default").bundle.path.name == "idc-default"


def test_classify_csv_and_batch_name_probability_columns_alike(good_tile, tmp_path):
    csv_header = run("console script", "classify", good_tile, "--format", "csv", cwd=tmp_path).stdout.splitlines()[0]
    assert "p_IDC-negative" in csv_header.split(",")
    from edgehisto.runtime.registry import resolve_bundle
    from edgehisto.scale.batch import probability_columns

    assert "p_IDC-negative" in probability_columns(resolve_bundle("idc"))


def test_models_reports_the_megabytes_on_disk_and_names_listed_files_that_are_absent(tmp_path):
    import json

    done = run("console script", "models", "--json", "--no-verify", cwd=tmp_path)
    for row in json.loads(done.stdout):
        on_disk = sum(p.stat().st_size for p in Path(row["path"]).rglob("*") if p.is_file())
        assert abs(row["size_mb"] * 1e6 - on_disk) <= 0.01 * on_disk + 1e4
        assert all(not (Path(row["path"]) / name).exists() for name in row["listed_absent"])


def test_batch_on_an_empty_folder_names_the_error_on_stderr(tmp_path):
    (tmp_path / "empty").mkdir()
    done = run("console script", "batch", tmp_path / "empty", "--out", tmp_path / "out.parquet", cwd=tmp_path)
    assert done.returncode == 1
    assert f"error: {tmp_path / 'empty'}: directory holds no image files" in done.stderr.splitlines()


def test_a_text_file_named_png_is_described_as_text_not_as_a_python_bytes_repr(tmp_path):
    (tmp_path / "notes.png").write_text("hello\n")
    done = run("console script", "classify", tmp_path / "notes.png", cwd=tmp_path)
    assert done.returncode == 1
    assert 'it looks like text: "hello"' in done.stdout
    assert "b'" not in done.stdout + done.stderr


def test_the_gradcam_colour_bar_says_what_its_top_value_means(good_tile, tmp_path):
    import cv2
    import numpy as np

    from edgehisto.runtime.gradcam import gradcam_panel

    rgb = cv2.cvtColor(cv2.imread(str(good_tile)), cv2.COLOR_BGR2RGB)
    with_peak = gradcam_panel(rgb, np.zeros((4, 4), np.float32), "t", peak=0.0625)
    unlabelled = gradcam_panel(rgb, np.zeros((4, 4), np.float32), "t", peak=None)
    # The legend column right of the bar holds two lines at the top ("full", "= 0.0625"): ink in both.
    legend = with_peak[68:100, -60:]
    assert (legend[:16] < 128).any() and (legend[16:] < 128).any()
    assert not np.array_equal(with_peak, unlabelled)
