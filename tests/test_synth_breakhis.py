"""The synthetic BreaKHis generator writes the real layout, deterministically, read back cleanly."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgehisto.cli import cli
from edgehisto.datasets.breakhis import (
    ALL_SUBTYPES,
    MAGNIFICATIONS,
    MALIGNANT_SUBTYPES,
    BreakhisDataset,
    scan_breakhis,
)
from edgehisto.datasets.synth_breakhis import (
    BreakhisSynthSummary,
    render_breakhis_image,
    synthesize_breakhis,
)
from edgehisto.errors import DatasetLayoutError


def file_bytes(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under root."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def read_rgb(path: Path) -> np.ndarray:
    """A PNG image as an RGB array."""
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def fine_detail(image: np.ndarray) -> float:
    """Share of an image's contrast in structures smaller than a few pixels."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(gray - cv2.GaussianBlur(gray, (0, 0), 4)).mean() / (gray.std() + 1e-6))


@pytest.fixture(scope="module")
def synthesized(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[BreakhisDataset, BreakhisSynthSummary]:
    """40 images, 3 patient folders per subtype, read back by the reader; shared, read-only."""
    root = tmp_path_factory.mktemp("synth") / "breakhis"
    summary = synthesize_breakhis(root, 40, seed=3, n_patients_per_subtype=3)
    return scan_breakhis(root), summary


def test_the_same_seed_writes_byte_identical_files(tmp_path: Path) -> None:
    synthesize_breakhis(tmp_path / "a", 9, seed=5)
    synthesize_breakhis(tmp_path / "b", 9, seed=5)
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")


def test_different_seeds_write_different_files(tmp_path: Path) -> None:
    synthesize_breakhis(tmp_path / "a", 9, seed=5)
    synthesize_breakhis(tmp_path / "b", 9, seed=6)
    assert file_bytes(tmp_path / "a") != file_bytes(tmp_path / "b")


def test_the_reader_parses_every_image_back_with_no_problems(synthesized) -> None:
    dataset, summary = synthesized
    assert len(dataset) == summary.n_images == 40
    assert dataset.problems == []
    assert all(t.relpath.startswith("BreaKHis_v1/histology_slides/breast/") for t in dataset.tiles)


def test_every_subtype_appears_at_every_magnification(synthesized) -> None:
    dataset, _ = synthesized
    seen = set(zip(dataset.subtypes.tolist(), dataset.magnifications.tolist(), strict=True))
    assert seen == {(code, mag) for code in ALL_SUBTYPES for mag in MAGNIFICATIONS}


def test_the_summary_counts_what_is_on_disk(synthesized) -> None:
    dataset, summary = synthesized
    assert summary.binary_counts == dataset.binary_counts
    assert summary.subtype_counts == dataset.subtype_counts
    assert summary.magnification_counts == dataset.magnification_counts
    assert list(summary.patient_folders) == list(dataset.patient_folder_counts)
    assert list(summary.slides) == list(dataset.slide_counts)
    assert summary.n_masks == dataset.n_masks


def test_a_second_section_of_a_slide_makes_folders_outnumber_slides(synthesized) -> None:
    dataset, summary = synthesized
    assert len(summary.patient_folders) == 3 * len(ALL_SUBTYPES)
    assert len(summary.slides) == 2 * len(ALL_SUBTYPES)
    shared = [folders for folders in dataset.slide_folders.values() if len(folders) > 1]
    assert all(a.endswith("AB") and b.endswith("CD") for a, b in shared)


def test_images_are_700x460_rgb_uint8(synthesized) -> None:
    dataset, _ = synthesized
    assert {(tile.width, tile.height) for tile in dataset.tiles} == {(700, 460)}
    image = cv2.imread(str(dataset.tiles[0].path), cv2.IMREAD_UNCHANGED)
    assert image.shape == (460, 700, 3) and image.dtype == np.uint8


def test_masks_exist_exactly_for_malignant_images(synthesized) -> None:
    dataset, _ = synthesized
    for tile in dataset.tiles:
        assert (tile.mask_path is not None) == (tile.subtype in MALIGNANT_SUBTYPES), tile.relpath
        assert tile.mask_path is None or tile.mask_path.name == f"{tile.path.stem}_mask.png"


def test_masks_are_single_channel_0_255_the_image_size_with_a_lesion(synthesized) -> None:
    dataset, _ = synthesized
    for tile in dataset.tiles:
        if tile.mask_path is None:
            continue
        mask = cv2.imread(str(tile.mask_path), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (460, 700) and mask.dtype == np.uint8
        assert set(np.unique(mask).tolist()) <= {0, 255}
        assert (mask == 255).mean() > 0.2


def test_rendering_is_deterministic_per_generator_state() -> None:
    first = render_breakhis_image(np.random.default_rng(4), "PC", 200)
    again = render_breakhis_image(np.random.default_rng(4), "PC", 200)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])


def test_render_returns_a_mask_only_for_a_malignant_subtype() -> None:
    rng = np.random.default_rng(1)
    image, mask = render_breakhis_image(rng, "DC", 40, size=(92, 140))
    assert image.shape == (92, 140, 3) and image.dtype == np.uint8
    assert mask.shape == (92, 140) and mask.max() == 255
    assert render_breakhis_image(rng, "F", 40)[1] is None


@pytest.mark.parametrize(("subtype", "magnification"), [("XX", 40), ("DC", 50)])
def test_render_rejects_an_unknown_subtype_or_magnification(subtype, magnification) -> None:
    with pytest.raises(ValueError, match="subtype"):
        render_breakhis_image(np.random.default_rng(0), subtype, magnification)


def test_higher_magnification_shows_larger_structures() -> None:
    def mean_detail(magnification: int) -> float:
        return float(np.mean([
            fine_detail(render_breakhis_image(np.random.default_rng(k), code, magnification)[0])
            for k, code in enumerate(ALL_SUBTYPES)
        ]))

    assert mean_detail(40) > 1.3 * mean_detail(400)


def test_subtypes_differ_in_what_they_show() -> None:
    images = {
        code: [render_breakhis_image(np.random.default_rng(k), code, mag)[0]
               for k, mag in enumerate(MAGNIFICATIONS)]
        for code in ALL_SUBTYPES
    }

    def most(pixels) -> str:
        return max(images, key=lambda code: np.mean([pixels(i).mean() for i in images[code]]))

    def dark(image: np.ndarray) -> np.ndarray:  # nuclei
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) < 120

    def pale_blue(image: np.ndarray) -> np.ndarray:  # mucin
        return (image[..., 2].astype(int) > image[..., 0]) & (image.mean(-1) > 170)

    assert (most(dark), most(pale_blue)) == ("DC", "MC")


def test_progress_is_reported_up_to_the_total(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    synthesize_breakhis(tmp_path / "out", 3, seed=0, progress=lambda done, total, _label: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_it_refuses_to_mix_into_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "stray.txt").write_text("x")
    with pytest.raises(DatasetLayoutError, match="not empty"):
        synthesize_breakhis(tmp_path, 3, seed=0)


def test_the_cli_writes_the_images_and_prints_a_one_line_summary(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    args = ["synth", "breakhis", "--out", str(out), "--n", "8", "--seed", "1",
            "--patients-per-subtype", "1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert len(scan_breakhis(out)) == 8
    assert result.stdout.strip().count("\n") == 0
    assert result.stdout.startswith("wrote 8 images (4 benign, 4 malignant, 4 masks)")
