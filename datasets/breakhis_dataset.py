"""What a BreaKHis scan yields: its tiles, their per-tile arrays and counts, and the split key.

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

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from edgehisto.datasets.breakhis_names import ALL_SUBTYPES, BINARY_CLASSES, IMAGE_SIZE, MAGNIFICATIONS
from edgehisto.datasets.tile_scan import TileDataset, tile_column

SplitKey = Literal["slide", "patient_folder"]
DEFAULT_SPLIT_KEY: SplitKey = "slide"


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
class BreakhisDataset(TileDataset[BreakhisTile]):
    """The usable BreaKHis images under a root, plus every file that was left out and why."""

    binary_labels = tile_column("binary", np.int64, "0 (benign) / 1 (malignant) per tile, as int64.")
    subtypes = tile_column("subtype", str, "Subtype code (``A`` ... ``PC``) per tile.")
    subtype_indices = tile_column("subtype_index", np.int64,
                                  "Index of each tile's subtype within its binary group (0-3), as int64.")
    magnifications = tile_column("magnification", np.int64,
                                 "Magnification (40, 100, 200 or 400) per tile, as int64.")
    patients = tile_column("patient", str, "Patient folder id (e.g. ``14-22549AB``) per tile.")
    patient_folders = tile_column("patient_folder", str,
                                  "Patient folder name (e.g. ``SOB_B_A_14-22549AB``) per tile.")
    slides = tile_column("slide", str,
                         "Numeric slide id (e.g. ``14-22549``) per tile: the leak-safe grouping key.")

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
