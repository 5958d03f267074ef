"""Labelled tiles for a bundle: its held-out test tiles when they can be found, else a data folder.

Used by the parity gates, bench accuracy and evaluation, so all three score the same tiles.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edgehisto.bundle.manifest import Bundle
from edgehisto.datasets.tasks import TASKS
from edgehisto.errors import EdgehistoError


def _held_out_rows(bundle: Bundle) -> list[dict] | None:
    split = bundle.test_split
    if not split.is_file():
        return None
    with open(split, newline="") as handle:
        return list(csv.DictReader(handle))


def held_out_relpaths(bundle: Bundle, data_dir: Path) -> set[str] | None:
    """The bundle's held-out test tiles as relpaths, if every one of them is under ``data_dir``."""
    rows = _held_out_rows(bundle)
    if rows and all((Path(data_dir) / r["relpath"]).is_file() for r in rows):
        return {r["relpath"] for r in rows}
    return None


def labelled_tiles(bundle: Bundle, data_dir: Path | None, limit: int) -> tuple[Path, list[str], np.ndarray]:
    """(root, relpaths, task-level labels) for parity gates and bench accuracy.

    The bundle's held-out test tiles (``reference/test_split.csv``) are used when they can be
    found: under ``data_dir`` if given, else under the recorded data root. Otherwise every tile of
    ``data_dir`` is used (which may include the model's training tiles).
    """
    rows = _held_out_rows(bundle)
    root = Path(data_dir) if data_dir is not None else bundle.reference_data_root
    if rows and root.is_dir() and all((root / r["relpath"]).is_file() for r in rows):
        relpaths, labels = [r["relpath"] for r in rows], np.array([int(r["label"]) for r in rows])
    elif data_dir is not None:
        tiles = TASKS[bundle.task].scan(Path(data_dir))
        root, relpaths, labels = tiles.root, tiles.relpaths, tiles.labels
    else:
        raise EdgehistoError(f"the bundle's reference data ({root}) is not here; pass --data DIR")
    keep = even_subsample(len(relpaths), limit)
    return Path(root), [relpaths[i] for i in keep], np.asarray(labels)[keep]


def even_subsample(n: int, limit: int | None) -> np.ndarray:
    """Indices of an even, deterministic subsample of ``n`` items (all when ``n <= limit``).

    Sorted listings group tiles by patient and class, so even spacing keeps every one represented.
    """
    if limit is None or n <= limit:
        return np.arange(n)
    return np.linspace(0, n - 1, limit).round().astype(int)
