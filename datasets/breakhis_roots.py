"""BreaKHis over several roots: manifest-listed folders, and folders holding several roots.

A *manifest-listed* folder has a ``manifest.csv`` with the columns ``relpath, label, tumor_subtype,
patient_folder, slide, magnification`` (``width``/``height`` optional); every listed file is one
field, whatever its folder layout. This is how fields without their dataset names arrive (the
200X fields published squashed to 224x224, ``../shared/data/breakhis/more``).

A folder of roots holds, one level down, v1-layout roots (a ``BreaKHis_v1/.../breast`` tree) and
manifest-listed folders; the tiles of all of them make one dataset whose relpaths are relative to
that folder, so one split or one grouped k-fold over the slide key spans every root. The same
dataset file name met twice (in two roots) is kept once, and the second becomes a problem.
"""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from pathlib import Path

from edgehisto.bundle.progress import Progress, no_progress
from edgehisto.datasets.breakhis import PROGRESS_LABEL, find_breast_dir
from edgehisto.datasets.breakhis_dataset import BreakhisDataset, BreakhisTile
from edgehisto.datasets.breakhis_names import (
    BINARY_CLASSES,
    BINARY_CODES,
    GROUP_SUBTYPES,
    IMAGE_SIZE,
    MAGNIFICATIONS,
    SUBTYPE_NAMES,
)
from edgehisto.datasets.files import FileProblem, png_size

MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = ("relpath", "label", "tumor_subtype", "patient_folder", "slide", "magnification")
_FOLDER_RE = re.compile(r"^SOB_(?P<binary>[BM])_(?P<subtype>[A-Z]+)_(?P<patient>\d+-\d+[A-Z]*)$")
_SEQ_RE = re.compile(r"-(?:i)?(?P<seq>\d+)\.png$")
_CODES = {name: code for code, name in SUBTYPE_NAMES.items()}
# A stored field whose aspect ratio is this far from 700:460 was resized without keeping it.
_SQUASH_TOLERANCE = 0.2


def is_manifest_listed(root: Path) -> bool:
    """True if ``root/manifest.csv`` has the columns of a manifest-listed BreaKHis folder."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return False
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError):
        return False
    return set(MANIFEST_COLUMNS) <= set(header)


def child_roots(root: Path) -> list[Path]:
    """The v1-layout and manifest-listed folders directly below root, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [child for child in sorted(root.iterdir())
            if child.is_dir() and not child.name.startswith(".")
            and (find_breast_dir(child) is not None or is_manifest_listed(child))]


def has_roots(root: Path) -> bool:
    """True if root is manifest-listed or holds BreaKHis roots one level down."""
    return is_manifest_listed(root) or bool(child_roots(root))


def squashed(width: int | None, height: int | None) -> bool:
    """True when a stored field's aspect ratio is not the 700:460 of a BreaKHis field."""
    if not width or not height:
        return False
    return abs(width / height - IMAGE_SIZE[0] / IMAGE_SIZE[1]) > _SQUASH_TOLERANCE


def scan_roots(root: Path, *, read_sizes: bool = True, magnifications: set[int] | None = None,
               progress: Progress = no_progress) -> BreakhisDataset | None:
    """Read a manifest-listed folder or a folder of roots; None if root is neither."""
    from edgehisto.datasets.breakhis import scan_breakhis

    root = Path(root)
    if is_manifest_listed(root):
        return _scan_manifest(root, read_sizes, magnifications, progress)
    children = child_roots(root)
    if not children:
        return None
    dataset, seen = BreakhisDataset(root=root), {}
    for child in children:
        part = scan_breakhis(child, read_sizes=read_sizes, magnifications=magnifications, progress=progress)
        dataset.problems.extend(part.problems)
        for tile in part.tiles:
            relpath = f"{child.name}/{tile.relpath}"
            if tile.path.name in seen:
                dataset.problems.append(FileProblem(tile.path, f"the same field as {seen[tile.path.name]}"))
                continue
            seen[tile.path.name] = relpath
            dataset.tiles.append(replace(tile, relpath=relpath))
    dataset.problems.sort(key=lambda problem: str(problem.path))
    return dataset


def _scan_manifest(root: Path, read_sizes: bool, magnifications: set[int] | None,
                   progress: Progress) -> BreakhisDataset:
    with open(root / MANIFEST, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    dataset = BreakhisDataset(root=root)
    for done, row in enumerate(rows, start=1):
        tile = _manifest_tile(root, row, read_sizes, dataset.problems)
        if tile is not None and (magnifications is None or tile.magnification in magnifications):
            dataset.tiles.append(tile)
        progress(done, len(rows), PROGRESS_LABEL)
    return dataset


def _manifest_tile(root: Path, row: dict, read_sizes: bool, problems: list[FileProblem]) -> BreakhisTile | None:
    """One listed field, or None with a problem saying which column is wrong."""
    path = root / row["relpath"]

    def problem(reason: str) -> None:
        problems.append(FileProblem(path, f"{MANIFEST}: {reason}"))

    folder = _FOLDER_RE.match(row["patient_folder"])
    code = _CODES.get(row["tumor_subtype"])
    magnification = row["magnification"].rstrip("X")
    if folder is None:
        return problem(f"patient_folder {row['patient_folder']!r} is not SOB_<B|M>_<SUB>_<YY>-<SLIDE...>")
    if code is None or code != folder["subtype"] or code not in GROUP_SUBTYPES[folder["binary"]]:
        return problem(f"tumor_subtype {row['tumor_subtype']!r} disagrees with {row['patient_folder']}")
    if row["label"] != BINARY_CODES[folder["binary"]]:
        return problem(f"label {row['label']!r} disagrees with {row['patient_folder']}")
    if not folder["patient"].startswith(row["slide"]):
        return problem(f"slide {row['slide']!r} is not the slide of {row['patient_folder']}")
    if not magnification.isdigit() or int(magnification) not in MAGNIFICATIONS:
        return problem(f"magnification {row['magnification']!r} is not one of {MAGNIFICATIONS}")
    if not path.is_file():
        return problem("listed but missing")
    width, height = int(row.get("width") or 0) or None, int(row.get("height") or 0) or None
    if read_sizes:
        size = png_size(path)
        if not isinstance(size, tuple):
            return problem(size or "not an intact PNG")
        width, height = size
    seq = _SEQ_RE.search(path.name)
    return BreakhisTile(
        path=path, relpath=row["relpath"], label=row["label"], binary=BINARY_CLASSES.index(row["label"]),
        subtype=code, subtype_index=GROUP_SUBTYPES[folder["binary"]].index(code),
        magnification=int(magnification), patient=folder["patient"], slide=row["slide"],
        seq=int(seq["seq"]) if seq else 0, width=width, height=height, squashed=squashed(width, height),
    )
