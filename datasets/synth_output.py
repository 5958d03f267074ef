"""What every synthetic generator does around its painting: a fresh folder, and the images written.

A generator plans its whole dataset first, then renders it image by image. Each image draws
from its own random stream, made from (seed, index) alone, so an image never depends on its
neighbours and the same seed writes the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from edgehisto.bundle.progress import Progress, no_progress
from edgehisto.errors import DatasetLayoutError

SpecT = TypeVar("SpecT")


def refuse_used_folder(out_dir: Path) -> None:
    """Raise ``DatasetLayoutError`` if out_dir holds anything, so that two runs never mix."""
    if out_dir.exists() and any(out_dir.iterdir()):
        raise DatasetLayoutError(f"{out_dir} is not empty; synthesize into a new directory")


def write_planned(
    out_dir: Path,
    seed: int,
    plan: Sequence[SpecT],
    render: Callable[[np.random.Generator, SpecT], tuple[str, np.ndarray, np.ndarray | None]],
    progress: Progress = no_progress,
    progress_label: str = "images",
) -> None:
    """Render every planned image and write it, with its ``<stem>_mask.png`` when it has a mask.

    Args:
        render: ``render(rng, spec)`` for each spec of the plan, with the image's own stream:
            (relpath below out_dir, RGB uint8 image, 0/255 lesion mask or None).
        progress: called as ``progress(done, total, progress_label)`` about a hundred times, and at the end.
    """
    total = len(plan)
    every = max(1, total // 100)
    for index, spec in enumerate(plan):
        relpath, image, mask = render(np.random.default_rng([seed, index]), spec)
        _write(out_dir / relpath, image, mask)
        if (index + 1) % every == 0 or index + 1 == total:
            progress(index + 1, total, progress_label)


def _write(path: Path, image: np.ndarray, mask: np.ndarray | None) -> None:
    """Write an RGB image, and its mask if any, creating the folders they go in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    images = {path: cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
              path.with_name(f"{path.stem}_mask.png"): mask}
    for target, pixels in images.items():
        if pixels is not None and not cv2.imwrite(str(target), pixels):
            raise OSError(f"could not write {target}")
