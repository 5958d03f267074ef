"""Where a slide map's tiles come from: a folder of coordinate-named patches, or one large image.

A **patch folder** holds one patient's IDC patches, named ``PATIENT_idx5_xX_yY_classC.png`` (X, Y:
the patch's top-left corner on the slide, level-0 pixels at 40x; C: the dataset's label). They are put
back where they were; positions without a patch stay empty. Every patch must name the same patient
(a map is one slide); a name without coordinates, or a position given twice, is counted and skipped.

A **large image** (PNG, JPEG or TIFF within the runtime's pixel limit) is cut into tiles of the
bundle's declared input size (``expected_input.size``) with a stated stride. Tiles without tissue are
skipped by a cheap mask: Otsu's threshold on the HSV saturation of a downscaled copy (glass and
background are unsaturated, H&E-stained tissue is not); a tile is classified when its tissue share
reaches ``tissue_threshold``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgehisto.errors import EdgehistoError

PATCH_NAME = re.compile(r"^(?P<patient>[^_/]+)_idx5_x(?P<x>\d+)_y(?P<y>\d+)_class(?P<label>[01])\.png$")
PATCH_GRAMMAR = "PATIENT_idx5_xX_yY_classC.png"
_MASK_SIDE = 1024  # the tissue mask is computed on a copy at most this many pixels on its long side


class MapSourceError(EdgehistoError, ValueError):
    """A map source that cannot be mapped as a whole (one line says why)."""


@dataclass(frozen=True)
class Tile:
    """One tile of a map: where it sits (level-0 pixels), how to get its pixels, what is known of it."""

    x: int
    y: int
    w: int
    h: int
    path: str | None = None  # a patch file, or None for a crop of the large image
    truth: int | None = None  # the label a patch name carries
    tissue: float = 1.0  # the tissue share of the tile (1.0 for patches: they were cut from tissue)


@dataclass
class Layout:
    """Every tile of a source, and what was skipped on the way."""

    kind: str  # "patches" or "image"
    width: int  # the slide region's extent, level-0 pixels
    height: int
    tiles: list[Tile]
    background: int = 0  # large image: tiles below the tissue threshold
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> file names
    patient: str | None = None
    image: np.ndarray | None = None  # large image: the decoded RGB pixels


def patch_layout(folder: Path, tile_size: tuple[int, int]) -> Layout:
    """Place a folder's coordinate-named patches (recursively) on their slide.

    Raises:
        MapSourceError: no coordinate-named patch, or patches of more than one patient.
    """
    by_position: dict[tuple[int, int], Tile] = {}
    skipped: dict[str, list[str]] = {"no coordinates in the name": [], "same position as another patch": []}
    patients: set[str] = set()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith(".")):
        if path.suffix.lower() != ".png" or path.name.endswith("_mask.png"):
            continue
        match = PATCH_NAME.match(path.name)
        if match is None:
            skipped["no coordinates in the name"].append(path.name)
            continue
        patients.add(match["patient"])
        x, y = int(match["x"]), int(match["y"])
        if (x, y) in by_position:
            skipped["same position as another patch"].append(path.name)
            continue
        by_position[(x, y)] = Tile(x, y, tile_size[1], tile_size[0], str(path), int(match["label"]))
    if not by_position:
        raise MapSourceError(f"no coordinate-named patches in {folder} (expected {PATCH_GRAMMAR})")
    if len(patients) > 1:
        shown = ", ".join(sorted(patients)[:5]) + (", ..." if len(patients) > 5 else "")
        raise MapSourceError(f"{folder} holds patches of {len(patients)} patients ({shown}): a map is one slide, "
                             "map one patient's folder at a time")
    tiles = sorted(by_position.values(), key=lambda t: (t.y, t.x))
    width = max(t.x + t.w for t in tiles)
    height = max(t.y + t.h for t in tiles)
    return Layout("patches", width, height, tiles, skipped={k: v for k, v in skipped.items() if v},
                  patient=patients.pop())


def tissue_mask(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """(mask at reduced scale, scale): Otsu on the saturation channel of a downscaled copy."""
    scale = min(1.0, _MASK_SIDE / max(rgb.shape[:2]))
    small = cv2.resize(rgb, (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1.0 else rgb
    saturation = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)[..., 1]
    threshold, mask = cv2.threshold(saturation, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # A blank or uniform image has no two populations: Otsu then splits noise. Saturation this low is
    # glass, not stained tissue.
    if threshold < _MIN_TISSUE_SATURATION:
        mask = (saturation >= _MIN_TISSUE_SATURATION).astype(np.uint8)
    return mask.astype(bool), scale


_MIN_TISSUE_SATURATION = 20


def image_layout(rgb: np.ndarray, tile_size: tuple[int, int], stride: int | None,
                 tissue_threshold: float) -> Layout:
    """Tiles of a decoded image at ``tile_size`` (h, w) every ``stride`` pixels, with their tissue share."""
    tile_h, tile_w = tile_size
    height, width = rgb.shape[:2]
    if height < tile_h or width < tile_w:
        raise MapSourceError(f"the image is {width}x{height}, smaller than one {tile_w}x{tile_h} tile")
    step = stride or min(tile_h, tile_w)
    mask, scale = tissue_mask(rgb)
    tiles, background = [], 0
    for y in _starts(height, tile_h, step):
        for x in _starts(width, tile_w, step):
            top, left = int(y * scale), int(x * scale)
            window = mask[top:max(top + 1, int((y + tile_h) * scale)), left:max(left + 1, int((x + tile_w) * scale))]
            share = float(window.mean()) if window.size else 0.0
            if share >= tissue_threshold:
                tiles.append(Tile(x, y, tile_w, tile_h, tissue=share))
            else:
                background += 1
    return Layout("image", width, height, tiles, background=background, image=rgb)


def _starts(extent: int, size: int, step: int) -> Iterator[int]:
    """Tile origins every ``step`` pixels; the last tile is flush with the edge, so nothing is left out."""
    last = extent - size
    yield from range(0, last + 1, step)
    if last % step:
        yield last
