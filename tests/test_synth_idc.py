"""The synthetic IDC generator writes the real dataset's layout, deterministically."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgehisto.cli import cli
from edgehisto.datasets.synth_idc import SynthSummary, render_idc_tile, synthesize_idc
from edgehisto.errors import DatasetLayoutError

TILE_NAME = re.compile(r"^(\d+)_idx5_x(\d+)_y(\d+)_class([01])\.png$")


def tiles_in(root: Path) -> list[Path]:
    """Every tile (not mask) under a synthesized root, in a stable order."""
    return sorted(p for p in root.rglob("*.png") if not p.name.endswith("_mask.png"))


def read_rgb(path: Path) -> np.ndarray:
    """A PNG tile as an RGB array."""
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def file_bytes(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under root."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthSummary]:
    """A small dataset with plenty of undersized edge tiles, shared by the read-only tests."""
    root = tmp_path_factory.mktemp("synth") / "idc"
    return root, synthesize_idc(root, 48, seed=3, n_patients=4, undersized_fraction=0.2)


def test_the_same_seed_writes_byte_identical_files(tmp_path: Path) -> None:
    synthesize_idc(tmp_path / "a", 12, seed=5)
    synthesize_idc(tmp_path / "b", 12, seed=5)
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")


def test_different_seeds_write_different_files(tmp_path: Path) -> None:
    synthesize_idc(tmp_path / "a", 12, seed=5)
    synthesize_idc(tmp_path / "b", 12, seed=6)
    assert file_bytes(tmp_path / "a") != file_bytes(tmp_path / "b")


def test_tiles_follow_the_real_naming_and_their_folders_agree(dataset) -> None:
    root, summary = dataset
    tiles = tiles_in(root)
    assert len(tiles) == summary.n_tiles == 48
    for path in tiles:
        match = TILE_NAME.match(path.name)
        assert match, path.name
        patient, x, y, label = match.groups()
        assert path.parent.name == label
        assert path.parent.parent.name == patient
        assert path.parent.parent.parent == root
        assert 4 <= len(patient) <= 5
        assert int(x) % 50 == 1 and int(y) % 50 == 1


def test_coordinates_are_unique_within_each_patient(dataset) -> None:
    root, _ = dataset
    places = [TILE_NAME.match(p.name).group(1, 2, 3) for p in tiles_in(root)]
    assert len(places) == len(set(places))


def test_the_summary_counts_what_is_on_disk(dataset) -> None:
    root, summary = dataset
    labels = [TILE_NAME.match(p.name).group(4) for p in tiles_in(root)]
    assert summary.n_positive == labels.count("1") > 0
    assert summary.n_negative == labels.count("0") > 0
    assert summary.n_masks == len(list(root.rglob("*_mask.png")))
    assert sorted(summary.patients) == sorted(p.name for p in root.iterdir())


def test_masks_exist_exactly_for_positive_tiles(dataset) -> None:
    root, _ = dataset
    for path in tiles_in(root):
        mask = path.with_name(path.stem + "_mask.png")
        assert mask.exists() == path.name.endswith("_class1.png"), path.name


def test_masks_are_single_channel_0_255_with_a_lesion_the_tile_size(dataset) -> None:
    root, _ = dataset
    for path in root.rglob("*_mask.png"):
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        tile = read_rgb(path.with_name(path.name.replace("_mask", "")))
        assert mask.ndim == 2 and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        assert (mask == 255).sum() > 0
        assert mask.shape == tile.shape[:2]


def test_tiles_are_rgb_uint8_50x50_except_the_undersized_edge_tiles(dataset) -> None:
    root, summary = dataset
    shapes = [read_rgb(p).shape for p in tiles_in(root)]
    assert all(s[2] == 3 and s[0] <= 50 and s[1] <= 50 for s in shapes)
    undersized = [s for s in shapes if s[:2] != (50, 50)]
    assert len(undersized) == summary.n_undersized > 0
    # an edge patch is cut short in one direction only, like the real 50x35 ones
    assert all(50 in s[:2] for s in undersized)
    assert cv2.imread(str(tiles_in(root)[0]), cv2.IMREAD_UNCHANGED).dtype == np.uint8


def test_stroma_is_pinkish_with_more_red_than_green(dataset) -> None:
    root, _ = dataset
    means = np.array([read_rgb(p).reshape(-1, 3).mean(0) for p in tiles_in(root)])
    assert (means[:, 0] > means[:, 1]).mean() >= 0.9


def test_positives_have_more_dark_nuclear_pixels_than_negatives() -> None:
    rng = np.random.default_rng(0)

    def dark_share(positive: bool) -> float:
        tiles = [render_idc_tile(rng, positive)[0] for _ in range(20)]
        return float(np.mean([(t.mean(-1) < 120).mean() for t in tiles]))

    assert dark_share(True) > 2 * dark_share(False)


def test_malignant_nuclei_are_coarser_than_benign_ones_at_the_tile_resolution() -> None:
    # Nuclear size is what tells a malignant nest from a benign one, so it must survive the
    # downsampling to 50 px: blurring by one tile pixel keeps more of a nest's contrast when its
    # nuclei are big. That alone must order malignant above benign nests (AUC >= 0.99); with
    # nuclei under a tile pixel in radius it misordered 2-7 % of pairs.
    from edgehisto.datasets.synth_idc import _SUPERSAMPLE, TILE_SIZE, _nest

    side = (TILE_SIZE, TILE_SIZE)

    def coarseness(malignant: bool) -> np.ndarray:
        rng, shares = np.random.default_rng(0), []
        for _ in range(40):
            haem = np.full((TILE_SIZE * _SUPERSAMPLE,) * 2, 0.05, np.float32)
            mask = _nest(rng, haem, np.full_like(haem, 0.5), malignant)
            nest = cv2.resize(mask.astype(np.float32), side, interpolation=cv2.INTER_AREA) == 1
            tile = cv2.resize(haem, side, interpolation=cv2.INTER_AREA)
            shares.append(cv2.GaussianBlur(tile, (0, 0), 1.0)[nest].std() / tile[nest].std())
        return np.array(shares)

    malignant, benign = coarseness(True), coarseness(False)
    assert (malignant[:, None] > benign[None, :]).mean() >= 0.99


def test_render_returns_a_mask_only_for_a_positive_tile() -> None:
    rng = np.random.default_rng(1)
    tile, mask = render_idc_tile(rng, positive=True, size=32)
    assert tile.shape == (32, 32, 3) and tile.dtype == np.uint8
    assert mask.shape == (32, 32) and mask.max() == 255
    assert render_idc_tile(rng, positive=False)[1] is None


def test_progress_is_reported_up_to_the_total(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    synthesize_idc(tmp_path / "out", 5, seed=0, progress=lambda done, total, _label: calls.append((done, total)))
    assert calls[-1] == (5, 5)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_it_refuses_to_mix_into_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "stray.txt").write_text("x")
    with pytest.raises(DatasetLayoutError):
        synthesize_idc(tmp_path, 3, seed=0)


def test_the_cli_writes_the_tiles_and_prints_a_one_line_summary(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    args = ["synth", "idc", "--out", str(out), "--n", "20", "--seed", "1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert len(tiles_in(out)) == 20
    assert result.stdout.strip().count("\n") == 0
    assert result.stdout.startswith("wrote 20 tiles")
