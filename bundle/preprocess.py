"""Tile preprocessing driven by a ``PreprocessSpec``, the manifest's single preprocessing home.

Training builds its tensors with these same functions (``resize_tile`` then ``normalize``), and
the spec travels into the bundle's manifest, so the runtime reproduces training's input exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import cv2
import numpy as np

from edgehisto.bundle.colour import normalise_colour
from edgehisto.bundle.images import decode_rgb
from edgehisto.bundle.resize import resize
from edgehisto.errors import UnsupportedManifest


@dataclass(frozen=True)
class PreprocessSpec:
    """Everything needed to turn an image file into the model's input tensor.

    Steps, in order: decode to 8-bit RGB (H, W, 3); if ``pad_to`` is set and the tile is
    smaller than it, pad bottom/right with ``pad_value`` up to ``pad_to``; resize to
    ``input_size`` with ``resize_method`` (skipped when already that size; the ``*_exact``
    methods are bit-exact on every CPU, see ``edgehisto.bundle.resize``); if ``colour`` is set,
    normalise each channel's mean and std (``edgehisto.bundle.colour``, exact); convert to float32;
    multiply by ``scale``; subtract ``mean`` and divide by ``std`` per RGB channel. The tensor layout is NHWC.
    """

    input_size: tuple[int, int]  # (height, width)
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    resize_method: str = "bilinear_exact"
    color_order: str = "RGB"
    layout: str = "NHWC"
    dtype: str = "float32"
    pad_to: tuple[int, int] | None = None  # (height, width)
    pad_value: int = 255
    min_side: int = 8
    max_pixels: int = 40_000_000
    notes: list[str] = field(default_factory=list)
    # {"method": "channel_stats_exact", "mean": [r, g, b], "std": [r, g, b]} or None. Bundles made before
    # this step existed have no such key, which reads as None: they never normalised colour.
    colour: dict | None = None

    def to_dict(self) -> dict:
        """Every field, as written into the manifest (``colour`` only when set: a spec without it
        writes the manifest it always wrote)."""
        data = asdict(self)
        if data["colour"] is None:
            del data["colour"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessSpec:
        """Read a manifest's spec; every field but ``notes`` must be there (no silent defaults).

        The class defaults serve the code that *writes* a spec (training); a reader that filled
        in a missing field would hold a second copy of the preprocessing.

        Raises:
            UnsupportedManifest: a field is missing or unknown.
        """
        names = {f.name for f in fields(cls)}
        missing = sorted(names - {"notes", "colour"} - set(data))
        unknown = sorted(set(data) - names)
        if missing or unknown:
            raise UnsupportedManifest(
                f"preprocess spec: missing {missing or 'nothing'}, unknown {unknown or 'nothing'}")
        values = dict(data)
        for key in ("input_size", "mean", "std", "pad_to"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)


def resize_tile(rgb: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Pad (if undersized) and resize an 8-bit RGB tile to the spec's input size (uint8)."""
    if spec.pad_to is not None:
        height, width = rgb.shape[:2]
        pad_h, pad_w = max(0, spec.pad_to[0] - height), max(0, spec.pad_to[1] - width)
        if pad_h or pad_w:
            # Undersized tiles are slide-edge patches: the missing part is outside the slide,
            # so pad with background instead of stretching the tissue to a different scale.
            rgb = cv2.copyMakeBorder(
                rgb, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(spec.pad_value,) * 3
            )
    target_h, target_w = spec.input_size
    if rgb.shape[:2] != (target_h, target_w):
        rgb = resize(rgb, (target_h, target_w), spec.resize_method)
    if spec.colour is not None:
        rgb = normalise_colour(rgb, spec.colour["method"], spec.colour["mean"], spec.colour["std"])
    return np.ascontiguousarray(rgb)


def normalize(resized: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Scale and standardise uint8 tiles (..., H, W, 3) into float32 model input."""
    x = resized.astype(np.float32) * np.float32(spec.scale)
    if spec.mean != (0.0, 0.0, 0.0) or spec.std != (1.0, 1.0, 1.0):
        x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return x


def load_resized(path: str | Path, spec: PreprocessSpec) -> np.ndarray:
    """Read an image file and return it padded/resized as uint8 RGB; raises ``InvalidImage``."""
    data = Path(path).read_bytes()
    rgb = decode_rgb(data, max_pixels=spec.max_pixels, min_side=spec.min_side)
    return resize_tile(rgb, spec)
