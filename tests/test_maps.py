"""``edgehisto map``: patch folders and large images become a map PNG, a tile table, QuPath GeoJSON and a
summary, through the installed command; bad sources get one line and the right exit code."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.test_exit_codes import run


def _tissue(rng: np.random.Generator, positive: bool) -> np.ndarray:
    """A 50x50 H&E-coloured patch (BGR): pink stroma with purple nuclei, denser when 'positive'."""
    tile = np.empty((50, 50, 3), np.uint8)
    tile[:] = (200, 150, 220)
    for _ in range(30 if positive else 8):
        x, y = rng.integers(3, 47, 2)
        cv2.circle(tile, (int(x), int(y)), int(rng.integers(2, 4)), (150, 60, 110), -1)
    return tile


@pytest.fixture
def patient(tmp_path) -> Path:
    """One patient's coordinate-named patches on a 6x5 grid, the middle ones labelled positive."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "10253"
    for gx in range(6):
        for gy in range(5):
            label = int(2 <= gx <= 3 and 1 <= gy <= 3)
            x, y = 1 + 50 * gx, 1 + 50 * gy
            (folder / str(label)).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / str(label) / f"10253_idx5_x{x}_y{y}_class{label}.png"), _tissue(rng, bool(label)))
    return folder


def test_a_patch_folder_becomes_a_map_a_table_qupath_geojson_and_a_summary(patient, tmp_path):
    from edgehisto.runtime.registry import resolve_bundle

    geojson = pytest.importorskip("geojson")
    out = tmp_path / "map"
    done = run("console script", "map", patient, "--model", "idc", "--out", out, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    caveat = json.loads((resolve_bundle("idc").path / "model_card.json").read_text())["caveat"]
    assert not caveat or done.stderr.count(f"caveat (model card): {caveat}\n") == 1
    image = cv2.imread(str(out / "map.png"))
    assert image is not None and image.shape[1] <= 2000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tiles"] == {"classified": 30, "background": 0, "failed": 0, "skipped": {}}
    assert summary["complete"] is True and summary["patient"] == "10253" and summary["precision"] == "int8"
    assert summary["truth"]["n"] == 30 and summary["truth"]["positive_tiles_true"] == 6
    with open(out / "tiles.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # The same probabilities as classify --format json for the same tile (same model and precision).
    records = json.loads(run("console script", "classify", *[r["path"] for r in rows], "--model", "idc",
                             "--precision", "int8", "--format", "json", cwd=tmp_path).stdout)
    by_path = {r["path"]: r for r in records}
    for row in rows:
        for name, p in by_path[row["path"]]["probabilities"].items():
            assert float(row[f"p_{name}"]) == pytest.approx(p, abs=1e-6)
    # GeoJSON: valid for a maintained GeoJSON library, and in QuPath's conventions.
    collection = geojson.loads((out / "tiles.geojson").read_text())
    assert collection.is_valid, collection.errors()
    assert len(collection["features"]) == 30
    for feature, row in zip(collection["features"], rows, strict=True):
        ring = feature["geometry"]["coordinates"][0]
        x, y = int(row["x"]), int(row["y"])
        assert feature["geometry"]["type"] == "Polygon" and ring[0] == ring[-1] == [x, y]  # closed, top-left origin
        assert ring[2] == [x + 50, y + 50]  # level-0 pixels: the name's coordinates plus the patch size
        properties = feature["properties"]
        assert properties["objectType"] == "tile"
        assert properties["classification"]["name"] == row["label"]
        assert len(properties["classification"]["color"]) == 3
        assert isinstance(properties["measurements"], dict)
        assert properties["measurements"]["p_IDC-positive"] == pytest.approx(float(row["p_IDC-positive"]))


def test_patches_of_two_patients_are_refused_in_one_line(patient, tmp_path):
    other = patient / "0" / "9999_idx5_x1_y1_class0.png"
    other.write_bytes((patient / "0" / "10253_idx5_x1_y1_class0.png").read_bytes())
    done = run("console script", "map", patient, "--out", tmp_path / "m", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {patient} holds patches of 2 patients (10253, 9999): a map is one slide, map one patient's "
        "folder at a time"]


def test_a_folder_without_coordinate_names_is_refused_in_one_line(tmp_path):
    (tmp_path / "tiles").mkdir()
    cv2.imwrite(str(tmp_path / "tiles" / "a.png"), np.full((50, 50, 3), 200, np.uint8))
    done = run("console script", "map", tmp_path / "tiles", "--out", tmp_path / "m", cwd=tmp_path)
    assert done.returncode == 2 and "no coordinate-named patches" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_duplicates_unplaceable_names_and_broken_patches_make_a_partial_map_that_says_so(patient, tmp_path):
    (patient / "0" / "notes.png").write_bytes(b"")
    second = patient / "1" / "10253_idx5_x101_y51_class0.png"  # a second patch at (101, 51)
    second.write_bytes((patient / "1" / "10253_idx5_x101_y51_class1.png").read_bytes())
    broken = patient / "0" / "10253_idx5_x1_y1_class0.png"
    broken.write_bytes(broken.read_bytes()[:60])  # truncated
    out = tmp_path / "m"
    done = run("console script", "map", patient, "--out", out, cwd=tmp_path)
    assert done.returncode == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False
    assert summary["tiles"]["failed"] == 1
    assert summary["tiles"]["skipped"] == {"no coordinates in the name": 1, "same position as another patch": 1}
    assert "PARTIAL" in done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "10253_idx5_x1_y1_class0.png" in errors[0]
    assert "Traceback" not in done.stderr


def test_a_large_image_is_tiled_with_a_stride_and_its_background_is_skipped(tmp_path):
    rng = np.random.default_rng(1)
    image = np.full((300, 400, 3), 245, np.uint8)  # glass
    for gx in range(4):
        for gy in range(3):
            image[50 + 50 * gy:100 + 50 * gy, 100 + 50 * gx:150 + 50 * gx] = _tissue(rng, gx % 2 == 0)
    cv2.imwrite(str(tmp_path / "region.png"), image)
    out = tmp_path / "m"
    done = run("console script", "map", tmp_path / "region.png", "--out", out, "--stride", "50", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tiles"]["classified"] == 12
    assert summary["tiles"]["background"] == 6 * 8 - 12
    features = json.loads((out / "tiles.geojson").read_text())["features"]
    corners = sorted(tuple(f["geometry"]["coordinates"][0][0]) for f in features)
    assert corners == sorted((100 + 50 * gx, 50 + 50 * gy) for gx in range(4) for gy in range(3))


def test_an_image_without_tissue_maps_nothing_and_says_so(tmp_path):
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((200, 200, 3), 250, np.uint8))
    done = run("console script", "map", tmp_path / "blank.png", "--out", tmp_path / "m", cwd=tmp_path)
    assert done.returncode == 0
    assert "no tissue found" in done.stderr
    assert json.loads((tmp_path / "m" / "summary.json").read_text())["tiles"]["classified"] == 0


@pytest.mark.parametrize("problem", ["truncated", "too_many_pixels"])
def test_a_bad_large_image_gets_one_line_and_exit_2(tmp_path, problem):
    path = tmp_path / "slide.png"
    if problem == "truncated":
        cv2.imwrite(str(path), np.full((300, 300, 3), 200, np.uint8))
        path.write_bytes(path.read_bytes()[:200])
    else:  # the header claims more pixels than the runtime's limit: refused before decoding
        from tests.conftest import _bomb_png

        path.write_bytes(_bomb_png())
    done = run("console script", "map", path, "--out", tmp_path / "m", cwd=tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error: ")


def test_several_sources_each_get_a_folder_and_a_row_and_a_bad_one_does_not_stop_the_rest(patient, tmp_path):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 250, np.uint8))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    out = tmp_path / "maps"
    done = run("console script", "map", patient, blank, broken, "--out", out, cwd=tmp_path)
    assert done.returncode == 1
    with open(out / "slides.csv", newline="") as handle:
        rows = {Path(r["source"]).name: r for r in csv.DictReader(handle)}
    assert rows["10253"]["classified"] == "30" and (out / "10253" / "tiles.geojson").is_file()
    assert rows["blank.png"]["classified"] == "0" and (out / "blank_png" / "summary.json").is_file()
    assert rows["broken.png"]["error"] and not (out / "broken_png").exists()
    assert f"error: {broken}: " in done.stderr and "Traceback" not in done.stderr


def test_many_sources_on_ray_give_the_local_engines_outputs(patient, tmp_path):
    pytest.importorskip("ray", reason="the [scale] extra is not installed")
    image = tmp_path / "region.png"
    rng = np.random.default_rng(1)
    cv2.imwrite(str(image), np.vstack([np.hstack([_tissue(rng, bool((i + j) % 2)) for i in range(4)])
                                       for j in range(3)]))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    outputs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        done = run("console script", "map", patient, image, broken, "--out", out, "--engine", engine,
                   "--workers", "2", cwd=tmp_path)
        assert done.returncode == 1, done.stderr  # the broken source
        assert f"error: {broken}: " in done.stderr and "Traceback" not in done.stderr
        assert "WARNING" not in done.stderr and "core_worker" not in done.stderr
        with open(out / "slides.csv", newline="") as handle:
            outputs[engine] = [{k: v for k, v in row.items()} for row in csv.DictReader(handle)]
        for folder in ("10253", "region_png"):
            assert {p.name for p in (out / folder).iterdir()} == {"map.png", "tiles.csv", "tiles.geojson",
                                                                   "summary.json"}
    assert [r["source"] for r in outputs["ray"]] == [str(patient), str(image), str(broken)]
    for local, ray in zip(outputs["local"], outputs["ray"], strict=True):
        assert {k: v for k, v in local.items()} == {k: v for k, v in ray.items()}
    for folder in ("10253", "region_png"):
        assert (tmp_path / "local" / folder / "tiles.csv").read_text() == \
            (tmp_path / "ray" / folder / "tiles.csv").read_text()
