"""The geometry of a BreaKHis field: its true aspect ratio, and one common size that keeps it.

Every BreaKHis field is 700x460 (a few 700x456). Some are stored downscaled (350x230, keeping the
aspect), and the 200X fields of ``more/`` were published squashed to 224x224, the aspect ratio lost.
Squashing every field to a square, as the seed does, stretches each kind differently. Restoring the
true aspect (224x224 -> 224x147) and resizing every field to one size that keeps it (``field_size``)
gives tissue the same shape in every field; at one magnification, also the same microns per pixel.
"""

from __future__ import annotations

from edgehisto.datasets.breakhis_names import IMAGE_SIZE

ASPECT = IMAGE_SIZE[0] / IMAGE_SIZE[1]  # width / height of a BreaKHis field


def unsquashed_size(width: int, height: int, squashed: bool) -> tuple[int, int]:
    """(width, height) of a stored field at its true aspect ratio: a squashed field keeps its width.

    ``unsquashed_size(224, 224, True) == (224, 147)``; a field stored at its aspect is unchanged.
    """
    return (width, round(width / ASPECT)) if squashed else (width, height)


def field_size(height: int) -> tuple[int, int]:
    """(height, width) of a field ``height`` pixels high at the BreaKHis aspect: 147 -> (147, 224)."""
    return height, round(height * ASPECT)


def aspect_change(width: int, height: int, squashed: bool) -> float:
    """How far resizing the stored field to ``field_size`` moves its true aspect, as a fraction."""
    true_w, true_h = unsquashed_size(width, height, squashed)
    return abs(true_w / true_h / ASPECT - 1)
