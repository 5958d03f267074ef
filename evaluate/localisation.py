"""Does Grad-CAM look at the lesion? Pointing game, energy share, the deletion test, their means.

Everything here works in the model-input frame: the Grad-CAM map is upsampled exactly as the
runtime's overlay does (``normalize_map`` then bilinear ``cv2.resize``), and a lesion mask is
padded and resized with the tile's own ``resize_tile`` geometry, so a map pixel and a mask pixel
are the same place on the tissue. Pure numpy + OpenCV; the caller's arrays are never modified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from edgehisto.bundle.preprocess import PreprocessSpec, resize_tile
from edgehisto.errors import InvalidImage
from edgehisto.runtime.gradcam import normalize_map


def upsample_map(cam: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A Grad-CAM map scaled to [0, 1] and resized to ``shape`` (H, W) like ``overlay`` does."""
    unit = normalize_map(np.asarray(cam, np.float32))
    return cv2.resize(unit, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def mask_to_input(mask: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """A lesion mask (H, W), nonzero = lesion, padded and resized like its tile -> bool (h, w).

    ``resize_tile`` is reused so the geometry cannot drift from the tile's; only the pad value
    changes, because padding is background (outside the slide), never lesion.
    """
    lesion = np.where(np.asarray(mask) > 0, 255, 0).astype(np.uint8)
    resized = resize_tile(np.dstack([lesion] * 3), replace(spec, pad_value=0))
    return resized[..., 0] >= 128  # bilinear edges: the boundary sits where the mask was half on


def load_mask(path: Path, spec: PreprocessSpec, tile_size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a lesion mask PNG and bring it into the model-input frame (bool (h, w)).

    Raises ``InvalidImage`` if it cannot be read or its size differs from ``tile_size`` (H, W).
    """
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise InvalidImage(f"cannot read lesion mask {path}")
    if tile_size is not None and mask.shape != tuple(tile_size):
        raise InvalidImage(f"lesion mask {path} is {mask.shape[1]}x{mask.shape[0]}, "
                           f"its tile is {tile_size[1]}x{tile_size[0]}")
    return mask_to_input(mask, spec)


def pointing_hit(heat: np.ndarray, lesion: np.ndarray) -> bool | None:
    """True if the map's peak (first argmax) lies inside the lesion; None for an all-zero map."""
    _check_same_shape(heat, lesion)
    if not heat.max(initial=0.0) > 0:
        return None
    return bool(np.ravel(lesion)[int(np.argmax(heat))])


def energy_share(heat: np.ndarray, lesion: np.ndarray) -> float | None:
    """Share of the (non-negative) map's total inside the lesion; None for an all-zero map."""
    _check_same_shape(heat, lesion)
    total = float(heat.sum(dtype=np.float64))
    if total <= 0:
        return None
    return float(heat[lesion].sum(dtype=np.float64) / total)


def top_fraction_mask(heat: np.ndarray, fraction: float) -> np.ndarray:
    """Bool mask of the ``round(fraction * size)`` highest map pixels (ties: first in row order)."""
    count = _pixel_count(heat.shape, fraction)
    order = np.argsort(-np.ravel(heat), kind="stable")[:count]
    chosen = np.zeros(heat.size, bool)
    chosen[order] = True
    return chosen.reshape(heat.shape)


def random_fraction_mask(shape: tuple[int, int], fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Bool mask of as many pixels as ``top_fraction_mask`` chooses, drawn uniformly at random."""
    size = int(np.prod(shape))
    chosen = np.zeros(size, bool)
    chosen[rng.choice(size, _pixel_count(shape, fraction), replace=False)] = True
    return chosen.reshape(shape)


def delete_pixels(image: np.ndarray, mask: np.ndarray, value: int) -> np.ndarray:
    """A copy of an 8-bit RGB tile with the masked pixels set to ``value`` (the background)."""
    _check_same_shape(image[..., 0], mask)
    deleted = image.copy()
    deleted[mask] = value
    return deleted


def _mean(values: Sequence) -> float | None:
    return float(np.mean(values)) if len(values) else None


# The means below read per-tile outcomes (``scoring.TileOutcome``): ``true``, ``correct``,
# ``lesion_area_share``, ``pointing_hit``, ``energy_share``, ``deletion_drop``, ``random_drop``.
def localisation_stats(outcomes: Sequence) -> dict:
    """Pointing game and energy share over outcomes with a mask; chance = the lesion's area share.

    A uniform map scores the lesion's area share on both, so that is the level to beat.
    """
    masked = [o for o in outcomes if o.lesion_area_share is not None]
    scored = [o for o in masked if o.pointing_hit is not None]
    return {
        "n": len(masked), "n_empty_maps": len(masked) - len(scored),
        "pointing_game": _mean([o.pointing_hit for o in scored]),
        "energy_share": _mean([o.energy_share for o in scored]),
        "lesion_area_share": _mean([o.lesion_area_share for o in scored]),
    }


def localisation_by_class(outcomes: Sequence, class_names: Sequence[str]) -> dict:
    """``localisation_stats`` per true class that has masked tiles, all and correctly classified."""
    by_class = {}
    for index, name in enumerate(class_names):
        rows = [o for o in outcomes if o.true == index and o.lesion_area_share is not None]
        if rows:
            by_class[name] = localisation_stats(rows) | {
                "correct": localisation_stats([o for o in rows if o.correct])}
    return by_class


def deletion_stats(outcomes: Sequence, top_k_percent: float) -> dict:
    """Mean drop in the explained class's probability: top-k% map pixels deleted vs random k%.

    ``worse_than_random`` flags a map whose top pixels cost less than random ones.
    """
    scored = [o for o in outcomes if o.deletion_drop is not None]
    top, random = _mean([o.deletion_drop for o in scored]), _mean([o.random_drop for o in scored])
    return {
        "worse_than_random": None if top is None or random is None else bool(top < random),
        "top_k_percent": top_k_percent, "n": len(scored), "n_empty_maps": len(outcomes) - len(scored),
        "mean_drop_top_k": _mean([o.deletion_drop for o in scored]),
        "mean_drop_random": _mean([o.random_drop for o in scored]),
        "share_top_k_beats_random": _mean([o.deletion_drop > o.random_drop for o in scored]),
    }


def _pixel_count(shape: tuple[int, ...], fraction: float) -> int:
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    return int(round(fraction * int(np.prod(shape))))


def _check_same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"map and mask shapes differ: {a.shape} vs {b.shape}")
