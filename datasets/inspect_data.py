"""Detect a data directory's layout and summarise it as plain, JSON-serialisable data.

Each known layout is one ``Layout`` entry in ``LAYOUTS``: a cheap ``detect(root)`` check and a
``summarize(root)`` that reads the data. Count tables use string keys (``"40"``, ``"0"``) so
the summary survives a JSON round trip unchanged.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgehisto.errors import DatasetLayoutError


@dataclass(frozen=True)
class Layout:
    """A dataset layout edgehisto can recognise and summarise."""

    description: str
    detect: Callable[[Path], bool]
    summarize: Callable[[Path], dict]


def _detect_idc(root: Path) -> bool:
    """True if root looks like the IDC patch layout."""
    from edgehisto.datasets.idc import looks_like_idc

    return looks_like_idc(root)


def _summarize_idc(root: Path) -> dict:
    """Scan an IDC tree and return counts, undersized tiles, masks and problems."""
    from edgehisto.datasets.idc import CLASS_NAMES, scan_idc

    dataset = scan_idc(root)
    per_patient = dataset.patient_class_counts
    undersized = dataset.undersized
    return {
        "n_tiles": len(dataset.tiles),
        "class_names": {str(label): name for label, name in CLASS_NAMES.items()},
        "class_counts": {str(label): n for label, n in dataset.class_counts.items()},
        "n_patients": len(per_patient),
        "patients": {
            patient: {str(label): n for label, n in counts.items()}
            for patient, counts in per_patient.items()
        },
        "n_undersized": len(undersized),
        "undersized": [
            {"relpath": tile.relpath, "width": tile.width, "height": tile.height}
            for tile in undersized
        ],
        "n_masks": dataset.n_masks,
        "n_problems": len(dataset.problems),
        "problems": _problem_rows(dataset.problems, root),
    }


def _detect_breakhis(root: Path) -> bool:
    """True if root (or a folder down to ``breast`` below it) looks like BreaKHis."""
    from edgehisto.datasets.breakhis import looks_like_breakhis

    return looks_like_breakhis(root)


def _summarize_breakhis(root: Path) -> dict:
    """Scan a BreaKHis tree: counts by label, subtype, magnification, patient folder, slide."""
    from edgehisto.datasets.breakhis import scan_breakhis
    from edgehisto.datasets.breakhis_dataset import DEFAULT_SPLIT_KEY
    from edgehisto.datasets.breakhis_names import BINARY_CLASSES, MAGNIFICATIONS, MALIGNANT_SUBTYPES, SUBTYPE_NAMES

    dataset = scan_breakhis(root)
    roots = {tile.relpath.split("/")[0] for tile in dataset.tiles if not tile.relpath.startswith("BreaKHis_v1/")}
    by_subtype = Counter((tile.subtype, tile.magnification) for tile in dataset.tiles)
    by_folder = Counter((tile.patient_folder, tile.magnification) for tile in dataset.tiles)
    folders = {tile.patient_folder: tile for tile in dataset.tiles}
    slide_counts = dataset.slide_counts
    return {
        "n_tiles": len(dataset.tiles),
        "binary_counts": dataset.binary_counts,
        "subtype_counts": dataset.subtype_counts,
        "magnification_counts": {str(m): n for m, n in dataset.magnification_counts.items()},
        "subtypes": {
            code: {
                "name": SUBTYPE_NAMES[code],
                "label": BINARY_CLASSES[code in MALIGNANT_SUBTYPES],
                "magnification_counts": {str(m): by_subtype[code, m] for m in MAGNIFICATIONS},
                "total": total,
            }
            for code, total in dataset.subtype_counts.items()
        },
        "n_patient_folders": len(folders),
        "patient_folders": {
            name: {
                "label": folders[name].label,
                "subtype": folders[name].subtype,
                "slide": folders[name].slide,
                "magnification_counts": {str(m): by_folder[name, m] for m in MAGNIFICATIONS},
                "total": total,
            }
            for name, total in dataset.patient_folder_counts.items()
        },
        "n_slides": len(slide_counts),
        "slides": {
            slide: {"tiles": slide_counts[slide], "patient_folders": names}
            for slide, names in dataset.slide_folders.items()
        },
        "split_key": DEFAULT_SPLIT_KEY,
        # Which root each field came from (the first folder of its relpath when several roots are read).
        "roots": dict(sorted(Counter(tile.relpath.split("/")[0] if len(roots) > 1 else "." for tile in dataset.tiles)
                             .items())),
        "n_squashed": sum(tile.squashed for tile in dataset.tiles),
        "n_off_size": len(dataset.off_size),
        "off_size": [
            {"relpath": tile.relpath, "width": tile.width, "height": tile.height}
            for tile in dataset.off_size
        ],
        "n_masks": dataset.n_masks,
        "n_problems": len(dataset.problems),
        "problems": _problem_rows(dataset.problems, root),
    }


def _problem_rows(problems: list, root: Path) -> list[dict]:
    """Problems as {path relative to root, reason} dicts."""
    return [
        {"path": _display_path(problem.path, root), "reason": problem.reason}
        for problem in problems
    ]


def _display_path(path: Path, root: Path) -> str:
    """Posix path relative to root when possible, else as given."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


LAYOUTS: dict[str, Layout] = {
    "idc": Layout(
        description="IDC patches: PATIENT/0|1/PATIENT_idx5_xX_yY_classC.png",
        detect=_detect_idc,
        summarize=_summarize_idc,
    ),
    "breakhis": Layout(
        description="BreaKHis v1: BreaKHis_v1/histology_slides/breast/<benign|malignant>/SOB/"
        "<subtype>/SOB_<B|M>_<SUB>_<YY>-<SLIDE>/<MAG>X/*.png",
        detect=_detect_breakhis,
        summarize=_summarize_breakhis,
    ),
}


def detect_layout(root: Path) -> str:
    """Return the name of the first layout in ``LAYOUTS`` that root matches.

    Raises ``DatasetLayoutError`` if root is not a directory or matches no known layout.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"data directory not found: {root}")
    for name, layout in LAYOUTS.items():
        if layout.detect(root):
            return name
    known = "; ".join(f"{name} ({layout.description})" for name, layout in LAYOUTS.items())
    raise DatasetLayoutError(f"no known dataset layout in {root}; expected one of: {known}")


_SPECIAL_KINDS = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
                  (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))
_SPECIAL_SHOWN = 3


def _special_files(root: Path) -> list[str]:
    """``relpath (kind)`` of every FIFO, device or socket the dataset readers would walk past.

    The readers open files by name; opening a FIFO waits for a writer forever and opening a
    device may do anything, so these are found by ``stat`` first. The walk is the readers'
    (hidden names skipped, links to directories not entered).
    """
    found = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        for name in sorted(filenames):
            path = Path(directory) / name
            try:
                mode = os.stat(path).st_mode
            except OSError:
                continue  # a dangling link opens nothing
            kind = next((kind for test, kind in _SPECIAL_KINDS if test(mode)), None)
            if kind and not name.startswith("."):
                shown = _display_path(path, root)
                found.append(f"{shown if shown.isprintable() else repr(shown)} ({kind})")
    return found


def inspect_dataset(root: Path) -> dict:
    """Detect root's layout and return a JSON-serialisable summary of its contents.

    Raises ``DatasetLayoutError`` if root holds a FIFO, device or socket (only regular files
    are read) or matches no known layout.
    """
    root = Path(root)
    layout = detect_layout(root)
    special = _special_files(root)
    if special:
        shown = ", ".join(special[:_SPECIAL_SHOWN]) + (", ..." if len(special) > _SPECIAL_SHOWN else "")
        raise DatasetLayoutError(
            f"{root} holds {len(special)} entries that are not regular files and would not be "
            f"read ({shown}); move them out of the data directory"
        )
    return {"layout": layout, "root": str(root), **LAYOUTS[layout].summarize(root)}
