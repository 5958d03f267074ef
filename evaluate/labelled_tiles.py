"""The labelled tiles evaluate scores: a bundle's held-out test tiles (or all) of a data folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgehisto.bundle.manifest import Bundle
from edgehisto.datasets.labelled import even_subsample
from edgehisto.errors import EdgehistoError


@dataclass(frozen=True)
class LabelledTile:
    """A tile file, its true class per stage it is labelled for, and its lesion mask if any."""

    path: Path
    truth: dict[str, int]  # stage name -> true class index
    mask_path: Path | None = None
    size: tuple[int, int] | None = None  # (height, width) of the file, checked against its mask
    end_to_end: int = -1  # task-level label (BreaKHis: 8-class index), for routed metrics


def bundle_tiles(bundle: Bundle, data_dir: Path, limit: int | None,
                 all_tiles: bool = False) -> tuple[list[LabelledTile], int, str]:
    """(tiles to evaluate, files the scan left out, what was scored) for the bundle's task.

    By default only the bundle's held-out test tiles are scored when they are all under
    ``data_dir``: scoring the tiles a model was trained on would flatter it.
    """
    from edgehisto.datasets.labelled import held_out_relpaths
    from edgehisto.datasets.tasks import TASKS, breakhis_labels

    if bundle.task == "idc":
        from edgehisto.datasets.idc import scan_idc

        dataset = scan_idc(Path(data_dir))
        labels = dataset.labels
    elif bundle.task == "breakhis":
        from edgehisto.datasets.breakhis import scan_breakhis

        dataset = scan_breakhis(Path(data_dir))
        labels = breakhis_labels(dataset)
    else:
        raise EdgehistoError(f"evaluate does not know the task {bundle.task!r}")
    truth = TASKS[bundle.task].stage_labels(labels)
    tiles = [LabelledTile(t.path, {s: int(v[i]) for s, v in truth.items() if v[i] >= 0}, t.mask_path,
                          (t.height, t.width) if t.height else None, int(labels[i]))
             for i, t in enumerate(dataset.tiles)]
    held_out = None if all_tiles else held_out_relpaths(bundle, Path(data_dir))
    if held_out is not None:
        tiles = [tile for tile, t in zip(tiles, dataset.tiles, strict=True) if t.relpath in held_out]
        scope = f"the bundle's held-out test tiles ({len(held_out)})"
    elif all_tiles:
        scope = "every tile of the data folder (--all-tiles; training tiles included if they are there)"
    else:
        scope = ("every tile of the data folder: the bundle's held-out listing is not there, so training "
                 "tiles may be included")
    return [tiles[i] for i in even_subsample(len(tiles), limit)], len(dataset.problems), scope
