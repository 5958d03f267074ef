"""Detect a data directory's layout and summarise it as plain, JSON-serialisable data.

Each known layout is one ``Layout`` entry in ``LAYOUTS``: a cheap ``detect(root)`` check and a
``summarize(root)`` that reads the data. Adding BreakHis later is one more entry.
"""

from __future__ import annotations

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
    from edgehisto.train.datasets.idc import looks_like_idc

    return looks_like_idc(root)


def _summarize_idc(root: Path) -> dict:
    """Scan an IDC tree and return counts, undersized tiles, masks and problems."""
    from edgehisto.train.datasets.idc import CLASS_NAMES, scan_idc

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
        "problems": [
            {"path": _display_path(problem.path, root), "reason": problem.reason}
            for problem in dataset.problems
        ],
    }


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


def inspect_dataset(root: Path) -> dict:
    """Detect root's layout and return a JSON-serialisable summary of its contents."""
    root = Path(root)
    layout = detect_layout(root)
    return {"layout": layout, "root": str(root), **LAYOUTS[layout].summarize(root)}
