"""Levers measured but not (yet) built into the runtime, so each decision has its number.

- ``session_creation``: what creating a backbone session costs at cold start, as the runtime does it
  (the shipped graph, optimised by onnxruntime at ``ORT_ENABLE_ALL`` on the device), against loading a
  graph saved already optimised at ``ORT_ENABLE_EXTENDED`` (the last level whose output onnxruntime
  does not call hardware-specific), and whether the two compute identical numbers.
- ``decode_cost``: reading and decoding an image file and resizing it to the model input, the part
  of ``classify`` that happens before any session runs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from edgehisto.bundle import tensors
from edgehisto.bundle.images import decode_rgb
from edgehisto.bundle.manifest import Bundle, StageSpec, read_verified
from edgehisto.bundle.preprocess import normalize, resize_tile
from edgehisto.runtime.sessions import make_session
from edgehisto.runtime.timing import interleaved


def _creation_seconds(model: bytes, repeats: int, **settings) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        make_session(model, **settings)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def session_creation(bundle: Bundle, stage: StageSpec, precision: str, x1: np.ndarray, repeats: int = 3) -> dict:
    """Seconds to create the backbone session as shipped vs pre-optimised; max |difference| of outputs."""
    shipped = read_verified(bundle, stage.backbone(precision))
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "extended.onnx"
        make_session(shipped, level="ORT_ENABLE_EXTENDED", optimized_model_path=saved)
        extended = saved.read_bytes()
    outputs = [make_session(m).run([tensors.ACTIVATIONS], {tensors.IMAGE: x1})[0] for m in (shipped, extended)]
    return {"precision": precision, "shipped_s": _creation_seconds(shipped, repeats),
            "pre_optimised_extended_s": _creation_seconds(extended, repeats),
            "pre_optimised_bytes": len(extended), "shipped_bytes": len(shipped),
            "max_abs_activation_diff": float(np.abs(outputs[0] - outputs[1]).max())}


def decode_cost(bundle: Bundle, image: Path, repeats: int = 20) -> dict:
    """Median ms of reading + decoding ``image``, of resizing + normalising it, interleaved."""
    spec = bundle.preprocess
    data = Path(image).read_bytes()
    rgb = decode_rgb(data, max_pixels=spec.max_pixels, min_side=spec.min_side)
    timed = interleaved({"decode": lambda: decode_rgb(Path(image).read_bytes(), max_pixels=spec.max_pixels,
                                                      min_side=spec.min_side),
                         "resize_normalise": lambda: normalize(resize_tile(rgb, spec)[None], spec)}, repeats)
    return {"image": str(image), "size": list(rgb.shape[:2]), "bytes": len(data),
            "decode_ms": timed["decode"]["median_ms"], "resize_normalise_ms": timed["resize_normalise"]["median_ms"]}
