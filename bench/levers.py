"""Levers measured but not (yet) built into the runtime, so each decision has its number.

- ``session_creation``: what creating a backbone session costs at cold start, as the runtime does it
  (the shipped graph, optimised by onnxruntime at ``ORT_ENABLE_ALL`` on the device), against a copy
  saved already optimised at ``ORT_ENABLE_EXTENDED`` (the last level whose output onnxruntime does
  not call hardware-specific) and re-optimised at ALL on load, and whether the two compute identical
  numbers.
- ``decode_cost``: reading and decoding an image file and resizing it to the model input, the part
  of ``classify`` that happens before any session runs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from edgehisto.bench.timing import interleaved
from edgehisto.bundle import tensors
from edgehisto.bundle.images import decode_rgb
from edgehisto.bundle.manifest import Bundle, StageSpec, read_verified
from edgehisto.bundle.preprocess import normalize, resize_tile
from edgehisto.runtime.sessions import make_session


def session_creation(bundle: Bundle, stage: StageSpec, precision: str, x1: np.ndarray, repeats: int = 5) -> dict:
    """Seconds to create the backbone session from the shipped file vs from a copy saved already
    optimised at EXTENDED (both created as the runtime does, at ``ORT_ENABLE_ALL``, so the device
    still runs its layout optimisations on the copy), alternated; and max |difference| of outputs."""
    shipped = read_verified(bundle, stage.backbone(precision))
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "extended.onnx"
        make_session(shipped, level="ORT_ENABLE_EXTENDED", optimized_model_path=saved)
        extended = saved.read_bytes()
    outputs = [make_session(m).run([tensors.ACTIVATIONS], {tensors.IMAGE: x1})[0] for m in (shipped, extended)]
    seconds: dict[str, list[float]] = {"shipped": [], "extended": []}
    for _ in range(repeats):
        for name, model in (("shipped", shipped), ("extended", extended)):
            start = time.perf_counter()
            make_session(model)
            seconds[name].append(time.perf_counter() - start)
    return {"precision": precision, "shipped_s": float(np.median(seconds["shipped"])),
            "pre_optimised_extended_s": float(np.median(seconds["extended"])),
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
