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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgehisto.datasets.files import FileProblem, attach_masks, image_size, is_metadata, quiet_opencv, walk_files
from edgehisto.errors import DatasetLayoutError

TILE_SIZE = 50
CLASS_NAMES = {0: "IDC-negative", 1: "IDC-positive"}
TILE_GRAMMAR = "PATIENT/0|1/PATIENT_idx5_xX_yY_classC.png"
_TILE_RE = re.compile(
    r"^(?P<patient>[A-Za-z0-9-]+)_idx\d+_x(?P<x>\d+)_y(?P<y>\d+)_class(?P<label>[01])"
    r"(?P<mask>_mask)?\.png$"
)

Progress = Callable[[int, int], None]


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
class IdcDataset:
    """The usable tiles under a root, plus every file that was left out and why."""

    root: Path
    tiles: list[IdcTile] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tiles)

    @property
    def labels(self) -> np.ndarray:
        """Labels (0/1) of the tiles, as int64, in tile order."""
        return np.array([tile.label for tile in self.tiles], dtype=np.int64)

    @property
    def patients(self) -> np.ndarray:
        """Patient id (string) of each tile, in tile order: the grouping key for splits."""
        return np.array([tile.patient for tile in self.tiles], dtype=str)

    @property
    def relpaths(self) -> list[str]:
        """Posix paths of the tiles relative to the root, in tile order."""
        return [tile.relpath for tile in self.tiles]

    @property
    def undersized(self) -> list[IdcTile]:
        """Tiles smaller than 50 pixels on either side (slide-edge patches)."""
        return [tile for tile in self.tiles if tile.undersized]

    @property
    def n_masks(self) -> int:
        """Number of tiles with a lesion mask attached."""
        return sum(tile.mask_path is not None for tile in self.tiles)

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


def scan_idc(root: Path, *, progress: Progress | None = None) -> IdcDataset:
    """Read an IDC directory tree into tiles and problems, in a deterministic (sorted) order.

    ``progress(done, total)`` is called after each candidate tile is read, if given.
    Raises ``DatasetLayoutError`` if the root is missing or holds no usable IDC tile.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"IDC data directory not found: {root}")
    dataset = IdcDataset(root=root)
    candidates: list[tuple[Path, re.Match]] = []
    masks: dict[Path, Path] = {}
    for path in walk_files(root):
        _classify_file(root, path, candidates, masks, dataset.problems)
    with quiet_opencv():  # bad files become FileProblems; OpenCV's own log adds only noise
        for done, (path, match) in enumerate(candidates, start=1):
            tile = _read_tile(root, path, match, dataset.problems)
            if tile is not None:
                dataset.tiles.append(tile)
            if progress is not None:
                progress(done, len(candidates))
    attach_masks(dataset, masks)
    dataset.problems.sort(key=lambda problem: problem.path)
    if not dataset.tiles:
        raise DatasetLayoutError(
            f"no IDC tiles ({TILE_GRAMMAR}) found in {root}"
            + (f" ({len(dataset.problems)} files rejected)" if dataset.problems else "")
        )
    return dataset


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


def _classify_file(
    root: Path,
    path: Path,
    candidates: list[tuple[Path, re.Match]],
    masks: dict[Path, Path],
    problems: list[FileProblem],
) -> None:
    """Sort one file into candidate tile, mask, silently ignored metadata, or problem."""
    if is_metadata(path):
        return
    match = _TILE_RE.match(path.name)
    if path.suffix.lower() != ".png":
        problems.append(FileProblem(path, f"not a .png file; IDC tiles are {TILE_GRAMMAR}"))
    elif match is None:
        problems.append(FileProblem(path, f"file name does not match {TILE_GRAMMAR}"))
    elif (reason := _placement_problem(root, path, match)) is not None:
        problems.append(FileProblem(path, reason))
    elif match["mask"]:
        masks[path.with_name(path.name[: -len("_mask.png")] + ".png")] = path
    else:
        candidates.append((path, match))


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


def _read_tile(
    root: Path, path: Path, match: re.Match, problems: list[FileProblem]
) -> IdcTile | None:
    """Decode one candidate tile's size; an unreadable file becomes a problem."""
    size = image_size(path)
    if isinstance(size, str):
        problems.append(FileProblem(path, size))
        return None
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
