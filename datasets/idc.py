"""Reader for the IDC breast-histopathology patch layout (numpy + OpenCV only, no TensorFlow).

Layout: ``ROOT/PATIENT/0|1/PATIENT_idx5_xX_yY_classC.png``, 50x50 RGB patches, class 0 =
IDC-negative, class 1 = IDC-positive. Slide-edge patches can be smaller than 50x50; they are
kept as tiles (preprocessing pads them) and listed by ``IdcDataset.undersized``. The project's
synthetic generator also writes ``<tile stem>_mask.png`` lesion masks next to positive tiles;
those are attached to their tile, never counted as tiles.

Scanning never stops at a bad file: every file that looks like data but cannot be used
becomes a ``FileProblem`` (one line, with the values involved) and is left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from edgehisto.bundle.progress import Progress, no_progress
from edgehisto.datasets.files import image_size
from edgehisto.datasets.tile_scan import TileDataset, match_tile_name, scan_tiles, tile_column
from edgehisto.errors import DatasetLayoutError

TILE_SIZE = 50
CLASS_NAMES = {0: "IDC-negative", 1: "IDC-positive"}
TILE_GRAMMAR = "PATIENT/0|1/PATIENT_idx5_xX_yY_classC.png"
_TILE_RE = re.compile(
    r"^(?P<patient>[A-Za-z0-9-]+)_idx\d+_x(?P<x>\d+)_y(?P<y>\d+)_class(?P<label>[01])"
    r"(?P<mask>_mask)?\.png$"
)


@dataclass(frozen=True)
class IdcTile:
    """One IDC patch: where it is, whose it is, where it was on the slide, label and size."""

    path: Path
    relpath: str
    patient: str
    x: int
    y: int
    label: int
    width: int
    height: int
    mask_path: Path | None = None

    @property
    def undersized(self) -> bool:
        """True for slide-edge patches smaller than 50 pixels on either side."""
        return self.width < TILE_SIZE or self.height < TILE_SIZE


@dataclass
class IdcDataset(TileDataset[IdcTile]):
    """The usable IDC tiles under a root, plus every file that was left out and why."""

    labels = tile_column("label", np.int64, "Labels (0/1) of the tiles, as int64, in tile order.")
    patients = tile_column("patient", str,
                           "Patient id (string) of each tile, in tile order: the grouping key for splits.")

    @property
    def undersized(self) -> list[IdcTile]:
        """Tiles smaller than 50 pixels on either side (slide-edge patches)."""
        return [tile for tile in self.tiles if tile.undersized]

    @property
    def class_counts(self) -> dict[int, int]:
        """Number of tiles per class; both classes are always present as keys."""
        counts = dict.fromkeys(CLASS_NAMES, 0)
        for tile in self.tiles:
            counts[tile.label] += 1
        return counts

    @property
    def patient_class_counts(self) -> dict[str, dict[int, int]]:
        """Number of tiles per class for each patient, patients in sorted order."""
        counts: dict[str, dict[int, int]] = {}
        for tile in self.tiles:
            counts.setdefault(tile.patient, dict.fromkeys(CLASS_NAMES, 0))[tile.label] += 1
        return dict(sorted(counts.items()))


def scan_idc(root: Path, *, progress: Progress = no_progress) -> IdcDataset:
    """Read an IDC directory tree into tiles and problems, in a deterministic (sorted) order.

    ``progress(done, total, "IDC tiles")`` is called after each candidate tile is read.
    Raises ``DatasetLayoutError`` if the root is missing or holds no usable IDC tile.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"IDC data directory not found: {root}")
    return scan_tiles(
        IdcDataset(root=root), root, partial(_check, root), partial(_read_tile, root),
        nothing_found=f"no IDC tiles ({TILE_GRAMMAR}) found in {root}",
        progress=progress, progress_label="IDC tiles",
    )


def looks_like_idc(root: Path) -> bool:
    """Cheap layout check: True if some ``PATIENT/0|1/`` folder holds a tile-named png."""
    root = Path(root)
    if not root.is_dir():
        return False
    for label_dir in sorted(root.glob("*/[01]")):
        for path in label_dir.glob("*.png"):
            match = _TILE_RE.match(path.name)
            if match and not match["mask"]:
                return True
    return False


def _check(root: Path, path: Path) -> re.Match | str:
    """The name match of a well-named, well-placed tile or mask, or why the file is left out."""
    match = match_tile_name(path, _TILE_RE, TILE_GRAMMAR, "IDC tiles")
    if isinstance(match, str):
        return match
    return _placement_problem(root, path, match) or match


def _placement_problem(root: Path, path: Path, match: re.Match) -> str | None:
    """Say how the folders disagree with the file name, or return None if they agree."""
    parts = path.relative_to(root).parts
    if len(parts) != 3:
        return f"not in a PATIENT/0|1/ folder (expected {TILE_GRAMMAR})"
    patient_dir, label_dir = parts[0], parts[1]
    if patient_dir != match["patient"]:
        return (
            f"patient folder '{patient_dir}' disagrees with patient '{match['patient']}' "
            "in the file name"
        )
    if label_dir != match["label"]:
        return f"label folder '{label_dir}' disagrees with class {match['label']} in the file name"
    return None


def _read_tile(root: Path, path: Path, match: re.Match) -> IdcTile | str:
    """Decode one candidate tile's size into a tile, or say why it is unreadable."""
    size = image_size(path)
    if isinstance(size, str):
        return size
    return IdcTile(
        path=path,
        relpath=path.relative_to(root).as_posix(),
        patient=match["patient"],
        x=int(match["x"]),
        y=int(match["y"]),
        label=int(match["label"]),
        width=size[0],
        height=size[1],
    )
