"""Representative images for int8 calibration, drawn from a run's training split.

One source feeds onnxruntime's ``CalibrationDataReader`` (a protocol of one method,
``get_next() -> dict | None``) and, later, TFLite's ``representative_dataset``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from edgehisto.bundle import tensors
from edgehisto.bundle.preprocess import PreprocessSpec, load_resized, normalize


def calibration_draw(relpaths: list[str], count: int, seed: int) -> list[str]:
    """The seeded random draw of calibration tiles, in ``relpaths`` order."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(relpaths), size=min(count, len(relpaths)), replace=False)
    return [relpaths[i] for i in sorted(chosen)]


def preprocessed_tiles(data_root: Path, relpaths: list[str], spec: PreprocessSpec) -> np.ndarray:
    """Float32 model inputs (n, h, w, 3) of tile files, preprocessed as the runtime does."""
    return normalize(np.stack([load_resized(Path(data_root) / relpath, spec) for relpath in relpaths]), spec)


def calibration_images(
    data_root: Path, relpaths: list[str], spec: PreprocessSpec, count: int, seed: int
) -> np.ndarray:
    """Preprocessed float32 images (count, h, w, 3) of the seeded draw (``calibration_draw``)."""
    return preprocessed_tiles(data_root, calibration_draw(relpaths, count, seed), spec)


class ImageCalibrationReader(CalibrationDataReader):
    """Feeds calibration images to onnxruntime in small batches."""

    def __init__(self, images: np.ndarray, input_name: str = tensors.IMAGE, batch_size: int = 16):
        self._images, self._input, self._batch = images, input_name, batch_size
        self._iterator: Iterator[dict] | None = None
        self.rewind()

    def get_next(self) -> dict | None:
        """The next batch as ``{input name: array}``, or None when the images are exhausted."""
        return next(self._iterator, None)

    def rewind(self) -> None:
        """Start again from the first image."""
        self._iterator = (
            {self._input: self._images[i:i + self._batch]}
            for i in range(0, len(self._images), self._batch)
        )
