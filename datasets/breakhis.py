"""Reader for BreaKHis v1 as it ships (numpy + OpenCV only, no TensorFlow).

Layout, below a ``breast`` folder::

    <benign|malignant>/SOB/<subtype folder>/SOB_<B|M>_<SUB>_<YY>-<SLIDE...>/<MAG>X/
        SOB_<B|M>_<SUB>-<YY>-<SLIDE...>-<MAG>-<SEQ>.png

e.g. ``benign/SOB/adenosis/SOB_B_A_14-22549AB/40X/SOB_B_A-14-22549AB-40-001.png``: 700x460 RGB
images at 40, 100, 200 and 400X. The root may be the ``breast`` folder, ``histology_slides``,
``BreaKHis_v1``, or the folder holding ``BreaKHis_v1``. Every file name repeats what its folders
say; each level (binary, subtype, patient, magnification) is checked, and a disagreement
becomes a ``FileProblem`` naming both values. The project's synthetic generator also writes
``<tile stem>_mask.png`` lesion masks next to tiles; they are attached, never counted.

Split key. A patient folder such as ``SOB_B_A_14-22549AB`` ends in a numeric slide id
(``14-22549``) plus optional section letters (``AB``). The 82 folders hold only 70 numeric ids,
and 10 ids span several folders: sections of one slide (``14-22549`` as ``AB``, ``CD`` and
``G``), one slide filed under two benign subtypes (``14-21998``: F and PT; ``14-29960``: A and
F), and ``14-13412`` under both ductal and lobular carcinoma. Sections of one slide are one
patient's tissue, so grouping by folder can put the same patient on both sides of a split and
inflate test scores. ``split_groups`` therefore defaults to the numeric id (``"slide"``), which
is leak-safe; ``"patient_folder"`` (the folder name, one group per folder, as much of the
literature groups) is there for comparison. Whichever key is used should be recorded with the
split (``splits.SplitSummary.key``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from edgehisto.datasets.files import (
    FileProblem,
    attach_masks,
    image_size,
    is_metadata,
    png_size,
    quiet_opencv,
    walk_files,
)
from edgehisto.errors import DatasetLayoutError

BINARY_CLASSES = ("benign", "malignant")
BENIGN_SUBTYPES = ("A", "F", "PT", "TA")
MALIGNANT_SUBTYPES = ("DC", "LC", "MC", "PC")
ALL_SUBTYPES = BENIGN_SUBTYPES + MALIGNANT_SUBTYPES
# code -> full name, spelled as the subtype folders (and filelist.csv's tumor_subtype) spell it
SUBTYPE_NAMES = {
    "A": "adenosis",
    "F": "fibroadenoma",
    "PT": "phyllodes_tumor",
    "TA": "tubular_adenoma",
    "DC": "ductal_carcinoma",
    "LC": "lobular_carcinoma",
    "MC": "mucinous_carcinoma",
    "PC": "papillary_carcinoma",
}
MAGNIFICATIONS = (40, 100, 200, 400)
IMAGE_SIZE = (700, 460)  # (width, height) of every BreaKHis image
SplitKey = Literal["slide", "patient_folder"]
DEFAULT_SPLIT_KEY: SplitKey = "slide"

TILE_GRAMMAR = "SOB_<B|M>_<SUB>-<YY>-<SLIDE...>-<MAG>-<SEQ>.png"
FOLDER_GRAMMAR = "<benign|malignant>/SOB/<subtype>/SOB_<B|M>_<SUB>_<YY>-<SLIDE...>/<MAG>X/"
_TILE_RE = re.compile(
    r"^SOB_(?P<binary>[BM])_(?P<subtype>[A-Z]+)-(?P<patient>(?P<slide>\d+-\d+)[A-Z]*)"
    r"-(?P<mag>\d+)-(?P<seq>\d+)(?P<mask>_mask)?\.png$"
)
_BINARY_CODES = {"B": "benign", "M": "malignant"}
_GROUP_SUBTYPES = {"B": BENIGN_SUBTYPES, "M": MALIGNANT_SUBTYPES}
# where the `breast` folder may sit below the root the user gives
_BREAST_UNDER = ("", "breast", "histology_slides/breast", "BreaKHis_v1/histology_slides/breast")
# an intact PNG: signature, then IHDR first; and the IEND chunk last

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BreakhisTile:
    """One BreaKHis image: where it is, its labels, magnification, patient, slide and size.

    ``width``/``height`` are None when the scan was asked not to read sizes.
    """

    path: Path
    relpath: str
    label: str
    binary: int
    subtype: str
    subtype_index: int
    magnification: int
    patient: str
    slide: str
    seq: int
    width: int | None = None
    height: int | None = None
    mask_path: Path | None = None
    # A 200X field published squashed to 224x224 (the whole 700x460 field, aspect ratio not kept).
    squashed: bool = False

    @property
    def aspect_stored(self) -> bool:
        """True when the stored pixels keep the field's aspect ratio (not squashed)."""
        return not self.squashed

    @property
    def patient_folder(self) -> str:
        """The patient folder's name, e.g. ``SOB_B_A_14-22549AB`` (unique per folder)."""
        return f"SOB_{'BM'[self.binary]}_{self.subtype}_{self.patient}"


@dataclass
class BreakhisDataset:
    """The usable BreaKHis images under a root, plus every file that was left out and why."""

    root: Path
    tiles: list[BreakhisTile] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tiles)

    @property
    def relpaths(self) -> list[str]:
        """Posix paths of the tiles relative to the root, in tile order."""
        return [tile.relpath for tile in self.tiles]

    @property
    def binary_labels(self) -> np.ndarray:
        """0 (benign) / 1 (malignant) per tile, as int64."""
        return np.array([tile.binary for tile in self.tiles], dtype=np.int64)

    @property
    def subtypes(self) -> np.ndarray:
        """Subtype code (``A`` ... ``PC``) per tile."""
        return np.array([tile.subtype for tile in self.tiles], dtype=str)

    @property
    def subtype_indices(self) -> np.ndarray:
        """Index of each tile's subtype within its binary group (0-3), as int64."""
        return np.array([tile.subtype_index for tile in self.tiles], dtype=np.int64)

    @property
    def magnifications(self) -> np.ndarray:
        """Magnification (40, 100, 200 or 400) per tile, as int64."""
        return np.array([tile.magnification for tile in self.tiles], dtype=np.int64)

    @property
    def patients(self) -> np.ndarray:
        """Patient folder id (e.g. ``14-22549AB``) per tile."""
        return np.array([tile.patient for tile in self.tiles], dtype=str)

    @property
    def patient_folders(self) -> np.ndarray:
        """Patient folder name (e.g. ``SOB_B_A_14-22549AB``) per tile."""
        return np.array([tile.patient_folder for tile in self.tiles], dtype=str)

    @property
    def slides(self) -> np.ndarray:
        """Numeric slide id (e.g. ``14-22549``) per tile: the leak-safe grouping key."""
        return np.array([tile.slide for tile in self.tiles], dtype=str)

    @property
    def binary_counts(self) -> dict[str, int]:
        """Tiles per binary class; both classes are always keys."""
        return _counts(BINARY_CLASSES, (tile.label for tile in self.tiles))

    @property
    def subtype_counts(self) -> dict[str, int]:
        """Tiles per subtype code; all eight codes are keys, benign ones first."""
        return _counts(ALL_SUBTYPES, (tile.subtype for tile in self.tiles))

    @property
    def magnification_counts(self) -> dict[int, int]:
        """Tiles per magnification; all four magnifications are keys."""
        return _counts(MAGNIFICATIONS, (tile.magnification for tile in self.tiles))

    @property
    def patient_folder_counts(self) -> dict[str, int]:
        """Tiles per patient folder, folders in sorted order."""
        return dict(sorted(Counter(tile.patient_folder for tile in self.tiles).items()))

    @property
    def slide_counts(self) -> dict[str, int]:
        """Tiles per numeric slide id, ids in sorted order."""
        return dict(sorted(Counter(tile.slide for tile in self.tiles).items()))

    @property
    def slide_folders(self) -> dict[str, list[str]]:
        """The patient folders of each numeric slide id, ids and folders in sorted order."""
        folders: dict[str, set[str]] = {}
        for tile in self.tiles:
            folders.setdefault(tile.slide, set()).add(tile.patient_folder)
        return {slide: sorted(names) for slide, names in sorted(folders.items())}

    @property
    def n_masks(self) -> int:
        """Number of tiles with a lesion mask attached."""
        return sum(tile.mask_path is not None for tile in self.tiles)

    @property
    def off_size(self) -> list[BreakhisTile]:
        """Tiles whose size was read and is not the usual 700x460."""
        return [
            tile for tile in self.tiles
            if tile.width is not None and (tile.width, tile.height) != IMAGE_SIZE
        ]


def _counts(keys, values) -> dict:
    """Count values, with every key present (zero if unseen) and in the given order."""
    counted = Counter(values)
    return {key: counted[key] for key in keys}


def tile_relpath(subtype: str, patient: str, magnification: int, seq: int) -> str:
    """Where BreaKHis keeps an image, relative to the folder holding ``BreaKHis_v1``.

    ``tile_relpath("A", "14-22549AB", 40, 1)`` ends in
    ``benign/SOB/adenosis/SOB_B_A_14-22549AB/40X/SOB_B_A-14-22549AB-40-001.png``.
    """
    code = "B" if subtype in BENIGN_SUBTYPES else "M"
    return (
        f"BreaKHis_v1/histology_slides/breast/{_BINARY_CODES[code]}/SOB/{SUBTYPE_NAMES[subtype]}/"
        f"SOB_{code}_{subtype}_{patient}/{magnification}X/"
        f"SOB_{code}_{subtype}-{patient}-{magnification}-{seq:03d}.png"
    )


def split_groups(dataset: BreakhisDataset, key: SplitKey = DEFAULT_SPLIT_KEY) -> np.ndarray:
    """The grouping key of each tile for a patient-level split (see the module docstring).

    Args:
        key: ``"slide"`` (numeric slide id, 70 groups on the full dataset; leak-safe) or
            ``"patient_folder"`` (folder name, 82 groups; sections of one slide may then land
            on different sides).
    """
    if key == "slide":
        return dataset.slides
    if key == "patient_folder":
        return dataset.patient_folders
    raise ValueError(f"unknown split key {key!r}; expected 'slide' or 'patient_folder'")


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
        match = _TILE_RE.match(path.name)
        if match and not match["mask"]:
            return True
    return False


def scan_breakhis(
    root: Path,
    *,
    read_sizes: bool = True,
    magnifications: set[int] | None = None,
    progress: Progress | None = None,
) -> BreakhisDataset:
    """Read a BreaKHis tree into tiles and problems, in a deterministic (sorted) order.

    Args:
        root: the ``breast`` folder or a folder above it (see the module docstring).
        read_sizes: read each image's size from its PNG header (decoding it fully only when
            the header or trailer looks wrong); False skips opening images at all.
        magnifications: keep only tiles (and masks) at these magnifications; None keeps all.
        progress: called as ``progress(done, total)`` after each candidate tile.

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
    dataset = BreakhisDataset(root=root)
    candidates: list[tuple[Path, re.Match]] = []
    masks: dict[Path, Path] = {}
    kept = set(MAGNIFICATIONS if magnifications is None else magnifications)
    for path in walk_files(breast):
        match = _classify_file(breast, path, dataset.problems)
        if match is None or int(match["mag"]) not in kept:
            continue
        if match["mask"]:
            masks[path.with_name(path.name[: -len("_mask.png")] + ".png")] = path
        else:
            candidates.append((path, match))
    with quiet_opencv():  # bad files become FileProblems; OpenCV's own log adds only noise
        for done, (path, match) in enumerate(candidates, start=1):
            tile = _read_tile(root, path, match, read_sizes, dataset.problems)
            if tile is not None:
                dataset.tiles.append(tile)
            if progress is not None:
                progress(done, len(candidates))
    attach_masks(dataset, masks)
    dataset.problems.sort(key=lambda problem: problem.path)
    if not dataset.tiles:
        raise DatasetLayoutError(
            f"no BreaKHis images ({FOLDER_GRAMMAR}{TILE_GRAMMAR}) found in {breast}"
            + (f" ({len(dataset.problems)} files rejected)" if dataset.problems else "")
        )
    return dataset


def _classify_file(breast: Path, path: Path, problems: list[FileProblem]) -> re.Match | None:
    """Return the name match of a well-placed tile or mask; a bad one becomes a problem."""
    if is_metadata(path):
        return None
    match = _TILE_RE.match(path.name)
    if path.suffix.lower() != ".png":
        reason = f"not a .png file; BreaKHis images are {TILE_GRAMMAR}"
    elif match is None:
        reason = f"file name does not match {TILE_GRAMMAR}"
    else:
        reason = _name_problem(match) or _placement_problem(breast, path, match)
    if reason is not None:
        problems.append(FileProblem(path, reason))
        return None
    return match


def _name_problem(match: re.Match) -> str | None:
    """Say what is inconsistent within the file name itself, or return None."""
    binary, subtype, mag = match["binary"], match["subtype"], int(match["mag"])
    if subtype not in SUBTYPE_NAMES:
        return f"unknown subtype '{subtype}' in the file name; expected one of {ALL_SUBTYPES}"
    if subtype not in _GROUP_SUBTYPES[binary]:
        return f"subtype '{subtype}' is not {_BINARY_CODES[binary]} ('{binary}') in the file name"
    if mag not in MAGNIFICATIONS:
        return f"magnification {mag} in the file name is not one of {MAGNIFICATIONS}"
    return None


def _placement_problem(breast: Path, path: Path, match: re.Match) -> str | None:
    """Say how the folders disagree with the file name, level by level, or return None."""
    parts = path.relative_to(breast).parts
    if len(parts) != 6:
        return f"not in a {FOLDER_GRAMMAR} folder"
    binary_dir, procedure_dir, subtype_dir, patient_dir, mag_dir = parts[:5]
    binary, subtype = match["binary"], match["subtype"]
    expected = (
        ("binary folder", binary_dir, _BINARY_CODES[binary], f"'{binary}'"),
        ("procedure folder", procedure_dir, "SOB", "'SOB'"),
        ("subtype folder", subtype_dir, SUBTYPE_NAMES[subtype], f"subtype '{subtype}'"),
        ("patient folder", patient_dir, f"SOB_{binary}_{subtype}_{match['patient']}",
         f"patient '{match['patient']}'"),
        ("magnification folder", mag_dir, f"{int(match['mag'])}X", f"magnification {match['mag']}"),
    )
    for level, found, wanted, in_name in expected:
        if found != wanted:
            return (
                f"{level} '{found}' disagrees with {in_name} in the file name "
                f"(expected '{wanted}')"
            )
    return None


def _read_tile(
    root: Path, path: Path, match: re.Match, read_sizes: bool, problems: list[FileProblem]
) -> BreakhisTile | None:
    """Build one tile; with read_sizes, an unreadable file becomes a problem instead."""
    size: tuple[int | None, int | None] | str = (None, None)
    if read_sizes:
        try:
            # anything unusual gets a full decode, which also names what is wrong
            size = png_size(path) or image_size(path)
        except OSError as error:
            size = f"unreadable image: {error.strerror or error}"
        if isinstance(size, str):
            problems.append(FileProblem(path, size))
            return None
    binary, subtype = match["binary"], match["subtype"]
    return BreakhisTile(
        path=path,
        relpath=path.relative_to(root).as_posix(),
        label=_BINARY_CODES[binary],
        binary=BINARY_CLASSES.index(_BINARY_CODES[binary]),
        subtype=subtype,
        subtype_index=_GROUP_SUBTYPES[binary].index(subtype),
        magnification=int(match["mag"]),
        patient=match["patient"],
        slide=match["slide"],
        seq=int(match["seq"]),
        width=size[0],
        height=size[1],
    )
