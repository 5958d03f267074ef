"""Reader for BreaKHis v1 as it ships (numpy + OpenCV only, no TensorFlow).

The layout and its file-name grammar are ``breakhis_names``; the dataset a scan yields, and the
split key that groups its tiles, are ``breakhis_dataset``. Both are importable from here too.
The root may be the ``breast`` folder, ``histology_slides``, ``BreaKHis_v1``, or the folder
holding ``BreaKHis_v1``; a root without one may be a manifest-listed folder or a folder of
several roots (``breakhis_roots``). A file whose name and folders disagree becomes a
``FileProblem`` naming both values. The project's synthetic generator also writes
``<tile stem>_mask.png`` lesion masks next to tiles; they are attached, never counted.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

from edgehisto.bundle.progress import Progress, no_progress
from edgehisto.datasets.breakhis_dataset import (
    DEFAULT_SPLIT_KEY,
    BreakhisDataset,
    BreakhisTile,
    SplitKey,
    split_groups,
)
from edgehisto.datasets.breakhis_names import (
    ALL_SUBTYPES,
    BENIGN_SUBTYPES,
    BINARY_CLASSES,
    BINARY_CODES,
    FOLDER_GRAMMAR,
    GROUP_SUBTYPES,
    IMAGE_SIZE,
    MAGNIFICATIONS,
    MALIGNANT_SUBTYPES,
    SUBTYPE_NAMES,
    TILE_GRAMMAR,
    TILE_RE,
    name_problem,
    placement_problem,
    tile_relpath,
)
from edgehisto.datasets.files import image_size, png_size
from edgehisto.datasets.tile_scan import match_tile_name, scan_tiles
from edgehisto.errors import DatasetLayoutError

__all__ = [
    "ALL_SUBTYPES", "BENIGN_SUBTYPES", "BINARY_CLASSES", "DEFAULT_SPLIT_KEY", "FOLDER_GRAMMAR", "IMAGE_SIZE",
    "MAGNIFICATIONS", "MALIGNANT_SUBTYPES", "SUBTYPE_NAMES", "TILE_GRAMMAR", "BreakhisDataset", "BreakhisTile",
    "SplitKey", "find_breast_dir", "looks_like_breakhis", "scan_breakhis", "split_groups", "tile_relpath",
]

PROGRESS_LABEL = "BreaKHis images"  # what a scan reports its progress in
# where the `breast` folder may sit below the root the user gives
_BREAST_UNDER = ("", "breast", "histology_slides/breast", "BreaKHis_v1/histology_slides/breast")


def find_breast_dir(root: Path) -> Path | None:
    """The ``breast`` folder at or below root (see ``_BREAST_UNDER``), or None."""
    for below in _BREAST_UNDER:
        candidate = Path(root) / below
        if candidate.name == "breast" and candidate.is_dir():
            return candidate
    return None


def looks_like_breakhis(root: Path) -> bool:
    """Cheap layout check: a ``breast`` folder with one BreaKHis-named image, or BreaKHis roots below."""
    breast = find_breast_dir(root)
    if breast is None:
        from edgehisto.datasets.breakhis_roots import has_roots

        return has_roots(root)
    for path in breast.glob("*/SOB/*/*/*X/SOB_*.png"):
        match = TILE_RE.match(path.name)
        if match and not match["mask"]:
            return True
    return False


def scan_breakhis(
    root: Path,
    *,
    read_sizes: bool = True,
    magnifications: set[int] | None = None,
    progress: Progress = no_progress,
) -> BreakhisDataset:
    """Read a BreaKHis tree into tiles and problems, in a deterministic (sorted) order.

    Args:
        root: the ``breast`` folder or a folder above it (see the module docstring).
        read_sizes: read each image's size from its PNG header (decoding it fully only when
            the header or trailer looks wrong); False skips opening images at all.
        magnifications: keep only tiles (and masks) at these magnifications; None keeps all.
        progress: called as ``progress(done, total, PROGRESS_LABEL)`` after each candidate tile
            (each listed field of a manifest-listed folder), a loop per root.

    A root without a ``breast`` folder may be a manifest-listed folder (``manifest.csv`` with a
    ``slide`` column) or a folder of several roots of either kind (``breakhis_roots``).

    Raises ``DatasetLayoutError`` if root holds no BreaKHis root or no usable tile.
    """
    root = Path(root)
    if magnifications is not None and not set(magnifications) <= set(MAGNIFICATIONS):
        raise ValueError(f"magnifications must be among {MAGNIFICATIONS}, got {magnifications}")
    breast = find_breast_dir(root)
    if breast is None:
        from edgehisto.datasets.breakhis_roots import scan_roots

        found = scan_roots(root, read_sizes=read_sizes, magnifications=magnifications, progress=progress)
        if found is not None:
            return found
        raise DatasetLayoutError(
            f"no BreaKHis 'breast' folder at or below {root} "
            "(expected BreaKHis_v1/histology_slides/breast, a manifest.csv with a slide column, "
            "or folders holding either)"
        )
    kept = set(MAGNIFICATIONS if magnifications is None else magnifications)
    return scan_tiles(
        BreakhisDataset(root=root), breast, partial(_check, breast), partial(_read_tile, root, read_sizes=read_sizes),
        nothing_found=f"no BreaKHis images ({FOLDER_GRAMMAR}{TILE_GRAMMAR}) found in {breast}",
        keep=lambda match: int(match["mag"]) in kept,
        progress=progress, progress_label=PROGRESS_LABEL,
    )


def _check(breast: Path, path: Path) -> re.Match | str:
    """The name match of a well-named, well-placed tile or mask, or why the file is left out."""
    match = match_tile_name(path, TILE_RE, TILE_GRAMMAR, "BreaKHis images")
    if isinstance(match, str):
        return match
    return name_problem(match) or placement_problem(breast, path, match) or match


def _read_tile(root: Path, path: Path, match: re.Match, read_sizes: bool) -> BreakhisTile | str:
    """Build one tile; with read_sizes, say why an unreadable file is left out instead."""
    size: tuple[int | None, int | None] | str = (None, None)
    if read_sizes:
        try:
            # anything unusual gets a full decode, which also names what is wrong
            size = png_size(path) or image_size(path)
        except OSError as error:
            size = f"unreadable image: {error.strerror or error}"
        if isinstance(size, str):
            return size
    binary, subtype = match["binary"], match["subtype"]
    return BreakhisTile(
        path=path,
        relpath=path.relative_to(root).as_posix(),
        label=BINARY_CODES[binary],
        binary=BINARY_CLASSES.index(BINARY_CODES[binary]),
        subtype=subtype,
        subtype_index=GROUP_SUBTYPES[binary].index(subtype),
        magnification=int(match["mag"]),
        patient=match["patient"],
        slide=match["slide"],
        seq=int(match["seq"]),
        width=size[0],
        height=size[1],
    )
