"""Task adapters: how a task's dataset is read and how one tile label becomes per-stage labels.

Training, export parity, evaluation and bench all speak in *stage labels*: for each stage a
label per tile, or -1 where the stage does not apply (a benign tile has no malignant subtype).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgehisto.bundle.input_guard import ExpectedInput


@dataclass(frozen=True)
class LabelledTiles:
    """Tiles of a dataset with one task-level label each (IDC: 0/1; BreaKHis: 8-class index)."""

    root: Path
    relpaths: list[str]
    labels: np.ndarray


@dataclass(frozen=True)
class TaskSpec:
    """How a task's dataset is read and how a tile label becomes per-stage labels."""
    name: str
    stages: dict[str, tuple[str, ...]]  # stage -> class names
    routing: dict[str, dict[str, str]]
    stage_labels: Callable[[np.ndarray], dict[str, np.ndarray]]
    scan: Callable[[Path], LabelledTiles]
    expected_input: ExpectedInput | None = None  # written into every bundle of the task


def _idc_scan(root: Path) -> LabelledTiles:
    from edgehisto.datasets.idc import scan_idc

    dataset = scan_idc(root)
    return LabelledTiles(dataset.root, dataset.relpaths, dataset.labels)


def _breakhis_scan(root: Path) -> LabelledTiles:
    from edgehisto.datasets.breakhis import scan_breakhis

    dataset = scan_breakhis(root)
    return LabelledTiles(dataset.root, dataset.relpaths, breakhis_labels(dataset))


def breakhis_labels(dataset) -> np.ndarray:
    """The 8-class index (A, F, PT, TA, DC, LC, MC, PC) of every BreaKHis tile."""
    from edgehisto.datasets.breakhis_names import ALL_SUBTYPES

    return np.array([ALL_SUBTYPES.index(t.subtype) for t in dataset.tiles], np.int64)


def _breakhis_stage_labels(labels: np.ndarray) -> dict[str, np.ndarray]:
    labels = np.asarray(labels)
    malignant = labels >= 4
    return {
        "binary": malignant.astype(np.int64),
        "benign_subtype": np.where(malignant, -1, labels),
        "malignant_subtype": np.where(malignant, labels - 4, -1),
    }


# An IDC patch is 50x50 (edge patches are smaller and get padded); a BreaKHis field is 700x460
# at 40-400X (the shared copy is downscaled to 350x230). Scale bounds leave room for both.
IDC = TaskSpec("idc", {"idc": ("IDC-negative", "IDC-positive")}, {},
               lambda labels: {"idc": np.asarray(labels, np.int64)}, _idc_scan,
               ExpectedInput("an IDC patch of H&E tissue", (50, 50), 0.5, 2.0, 1.5))
BREAKHIS = TaskSpec(
    "breakhis",
    {"binary": ("benign", "malignant"), "benign_subtype": ("A", "F", "PT", "TA"),
     "malignant_subtype": ("DC", "LC", "MC", "PC")},
    {"binary": {"benign": "benign_subtype", "malignant": "malignant_subtype"}},
    _breakhis_stage_labels,
    _breakhis_scan,
    ExpectedInput("a BreaKHis H&E field at 40-400X", (460, 700), 0.4, 2.5, 1.35, squashed_sizes=((224, 224),)),
)
TASKS = {task.name: task for task in (IDC, BREAKHIS)}
END_TO_END_CLASSES = {"idc": IDC.stages["idc"], "breakhis": ("A", "F", "PT", "TA", "DC", "LC", "MC", "PC")}


def routed_labels(task: TaskSpec, stage_predictions: dict[str, np.ndarray]) -> np.ndarray:
    """End-to-end label index from per-stage argmax predictions (every stage run on every tile).

    IDC: the single stage's label. BreaKHis: the binary prediction picks the subtype stage, and
    the result indexes (A, F, PT, TA, DC, LC, MC, PC).
    """
    if task.name == "idc":
        return stage_predictions["idc"]
    malignant = stage_predictions["binary"] == 1
    return np.where(malignant, 4 + stage_predictions["malignant_subtype"], stage_predictions["benign_subtype"])
