"""The scan every tile reader shares: files sorted into tiles, masks and problems, masks attached.

A reader states only its own layout: how a file name and its folders must agree (``check``) and
how a candidate becomes a tile (``read_tile``). Both answer with a one-line reason when a file
cannot be used, and ``scan_tiles`` turns that reason into a ``FileProblem``; scanning never
stops at a bad file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from edgehisto.bundle.progress import Progress, no_progress
from edgehisto.datasets.files import FileProblem, is_metadata, quiet_opencv, walk_files
from edgehisto.errors import DatasetLayoutError

TileT = TypeVar("TileT")
DatasetT = TypeVar("DatasetT", bound="TileDataset")
_MASK_SUFFIX = "_mask.png"


@dataclass
class TileDataset(Generic[TileT]):
    """The usable tiles under a root, plus every file that was left out and why."""

    root: Path
    tiles: list[TileT] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tiles)

    @property
    def relpaths(self) -> list[str]:
        """Posix paths of the tiles relative to the root, in tile order."""
        return [tile.relpath for tile in self.tiles]

    @property
    def n_masks(self) -> int:
        """Number of tiles with a lesion mask attached."""
        return sum(tile.mask_path is not None for tile in self.tiles)


def tile_column(attribute: str, dtype: type, doc: str) -> property:
    """A read-only dataset property: one tile attribute per tile, in tile order, as an array."""
    return property(lambda dataset: np.array([getattr(tile, attribute) for tile in dataset.tiles], dtype=dtype),
                    doc=doc)


def match_tile_name(path: Path, pattern: re.Pattern, grammar: str, kind: str) -> re.Match | str:
    """The file name's match, or why it is no tile: not a .png, or a name off the grammar.

    Args:
        grammar: the layout's file names as a reader states them (``PATIENT/0|1/...png``).
        kind: what the layout calls its files (``IDC tiles``), for the reason.
    """
    if path.suffix.lower() != ".png":
        return f"not a .png file; {kind} are {grammar}"
    return pattern.match(path.name) or f"file name does not match {grammar}"


def scan_tiles(
    dataset: DatasetT,
    folder: Path,
    check: Callable[[Path], re.Match | str],
    read_tile: Callable[[Path, re.Match], object],
    *,
    nothing_found: str,
    keep: Callable[[re.Match], bool] | None = None,
    progress: Progress = no_progress,
    progress_label: str = "tiles",
) -> DatasetT:
    """Fill ``dataset`` from the files below ``folder``, in a deterministic (sorted) order.

    Args:
        check: a file's name match (with a ``mask`` group), or the reason it is left out;
            metadata files are passed over silently before it is asked.
        read_tile: a candidate's tile, or the reason it is unreadable.
        nothing_found: the error's message when no tile is usable.
        keep: which well-formed tiles and masks to read (all when None); the rest are skipped.
        progress: called as ``progress(done, total, progress_label)`` after each candidate tile.

    Raises ``DatasetLayoutError`` if no tile is usable.
    """
    candidates: list[tuple[Path, re.Match]] = []
    masks: dict[Path, Path] = {}
    for path in walk_files(folder):
        if is_metadata(path):
            continue
        match = check(path)
        if isinstance(match, str):
            dataset.problems.append(FileProblem(path, match))
        elif keep is not None and not keep(match):
            continue
        elif match["mask"]:
            masks[path.with_name(path.name[: -len(_MASK_SUFFIX)] + ".png")] = path
        else:
            candidates.append((path, match))
    with quiet_opencv():  # bad files become FileProblems; OpenCV's own log adds only noise
        for done, (path, match) in enumerate(candidates, start=1):
            tile = read_tile(path, match)
            if isinstance(tile, str):
                dataset.problems.append(FileProblem(path, tile))
            else:
                dataset.tiles.append(tile)
            progress(done, len(candidates), progress_label)
    _attach_masks(dataset, masks)
    dataset.problems.sort(key=lambda problem: problem.path)
    if not dataset.tiles:
        raise DatasetLayoutError(
            nothing_found + (f" ({len(dataset.problems)} files rejected)" if dataset.problems else "")
        )
    return dataset


def _attach_masks(dataset: TileDataset, masks: dict[Path, Path]) -> None:
    """Attach each mask to the tile it names; a mask without a usable tile becomes a problem."""
    if not masks:
        return
    for index, tile in enumerate(dataset.tiles):
        mask = masks.pop(tile.path, None)
        if mask is not None:
            dataset.tiles[index] = replace(tile, mask_path=mask)
    for tile_path, mask in sorted(masks.items()):
        dataset.problems.append(
            FileProblem(mask, f"mask without a usable tile (expected {tile_path.name})")
        )
