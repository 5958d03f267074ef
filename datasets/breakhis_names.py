"""BreaKHis's vocabulary and file-name grammar: its classes, subtype codes, magnifications and paths.

Layout, below a ``breast`` folder::

    <benign|malignant>/SOB/<subtype folder>/SOB_<B|M>_<SUB>_<YY>-<SLIDE...>/<MAG>X/
        SOB_<B|M>_<SUB>-<YY>-<SLIDE...>-<MAG>-<SEQ>.png

e.g. ``benign/SOB/adenosis/SOB_B_A_14-22549AB/40X/SOB_B_A-14-22549AB-40-001.png``: 700x460 RGB
images at 40, 100, 200 and 400X. Every file name repeats what its folders say; each level
(binary, subtype, patient, magnification) is checked here, and a disagreement is described
naming both values.
"""

from __future__ import annotations

import re
from pathlib import Path

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

TILE_GRAMMAR = "SOB_<B|M>_<SUB>-<YY>-<SLIDE...>-<MAG>-<SEQ>.png"
FOLDER_GRAMMAR = "<benign|malignant>/SOB/<subtype>/SOB_<B|M>_<SUB>_<YY>-<SLIDE...>/<MAG>X/"
TILE_RE = re.compile(
    r"^SOB_(?P<binary>[BM])_(?P<subtype>[A-Z]+)-(?P<patient>(?P<slide>\d+-\d+)[A-Z]*)"
    r"-(?P<mag>\d+)-(?P<seq>\d+)(?P<mask>_mask)?\.png$"
)
# the binary code of file and folder names (B, M) -> its class, and -> the subtypes of that class
BINARY_CODES = {"B": "benign", "M": "malignant"}
GROUP_SUBTYPES = {"B": BENIGN_SUBTYPES, "M": MALIGNANT_SUBTYPES}


def tile_relpath(subtype: str, patient: str, magnification: int, seq: int) -> str:
    """Where BreaKHis keeps an image, relative to the folder holding ``BreaKHis_v1``.

    ``tile_relpath("A", "14-22549AB", 40, 1)`` ends in
    ``benign/SOB/adenosis/SOB_B_A_14-22549AB/40X/SOB_B_A-14-22549AB-40-001.png``.
    """
    code = "B" if subtype in BENIGN_SUBTYPES else "M"
    return (
        f"BreaKHis_v1/histology_slides/breast/{BINARY_CODES[code]}/SOB/{SUBTYPE_NAMES[subtype]}/"
        f"SOB_{code}_{subtype}_{patient}/{magnification}X/"
        f"SOB_{code}_{subtype}-{patient}-{magnification}-{seq:03d}.png"
    )


def name_problem(match: re.Match) -> str | None:
    """Say what is inconsistent within a ``TILE_RE`` file name itself, or return None."""
    binary, subtype, mag = match["binary"], match["subtype"], int(match["mag"])
    if subtype not in SUBTYPE_NAMES:
        return f"unknown subtype '{subtype}' in the file name; expected one of {ALL_SUBTYPES}"
    if subtype not in GROUP_SUBTYPES[binary]:
        return f"subtype '{subtype}' is not {BINARY_CODES[binary]} ('{binary}') in the file name"
    if mag not in MAGNIFICATIONS:
        return f"magnification {mag} in the file name is not one of {MAGNIFICATIONS}"
    return None


def placement_problem(breast: Path, path: Path, match: re.Match) -> str | None:
    """Say how the folders below ``breast`` disagree with the file name, level by level, or return None."""
    parts = path.relative_to(breast).parts
    if len(parts) != 6:
        return f"not in a {FOLDER_GRAMMAR} folder"
    binary_dir, procedure_dir, subtype_dir, patient_dir, mag_dir = parts[:5]
    binary, subtype = match["binary"], match["subtype"]
    expected = (
        ("binary folder", binary_dir, BINARY_CODES[binary], f"'{binary}'"),
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
