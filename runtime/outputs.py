"""Files the runtime writes for people: Grad-CAM overlays (PNG) and raw maps (.npy)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgehisto.runtime.classifier import TileResult
from edgehisto.runtime.gradcam import overlay


def write_gradcam_files(results: list[TileResult], out_dir: Path,
                        display_peaks: dict[str, float | None] | None = None) -> list[Path]:
    """For each classified tile and stage: ``<stem>.<stage>.gradcam.png`` and ``.npy``.

    The PNG is the JET overlay on the model-input tile, drawn on the stage's fixed display
    scale when ``display_peaks`` gives one; the .npy is the float32 map at the target layer's
    resolution. Stems that repeat get a numeric suffix.
    """
    display_peaks = display_peaks or {}
    out_dir.mkdir(parents=True, exist_ok=True)
    written, used = [], set()
    for result in results:
        if not result.ok or result.image is None:
            continue
        stem = Path(result.path).stem
        unique, n = stem, 1
        while unique in used:
            n += 1
            unique = f"{stem}_{n}"
        used.add(unique)
        for stage in result.stages:
            if stage.cam is None:
                continue
            raw, picture = (out_dir / f"{unique}.{stage.stage}.gradcam{ext}" for ext in (".npy", ".png"))
            np.save(raw, stage.cam.astype(np.float32))
            cv2.imwrite(str(picture), cv2.cvtColor(overlay(result.image, stage.cam, peak=display_peaks.get(stage.stage)), cv2.COLOR_RGB2BGR))
            written += [raw, picture]
    return written
