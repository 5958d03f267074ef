"""Export-side alternatives to a bundle's entry-stage backbone, for ``edgehisto bench --tuning-variants``.

Bench reads bundles only; what it times against the bundle's own files is exported here beforehand:
the fp32 backbone quantised one factor at a time away from export's default (QOperator, per-tensor,
S8S8 activations, Entropy and Percentile calibration, plus the default itself rebuilt on the same
calibration draw), and the reference Keras backbone converted again with tf2onnx
``inputs_as_nchw`` (fp32, and int8 with export's default choice). ``variants.json`` describes them::

    {"bundle": {"path", "stage", "backbone_fp32_sha256"},
     "calibration": {"source", "n", "seed"},
     "bundle_backbones": {"fp32": {"transposes": {...}}, "int8": {...}},
     "variants": [{"name", "kind": "quantization" | "layout", "precision", "layout", "file",
                   "sha256", "bytes", "quantization" (int8 only), "transposes": {...}}]}

``transposes`` counts Transpose nodes in the file and left after onnxruntime optimised it with the
runtime's own session settings.
"""

from __future__ import annotations

import csv
import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgehisto.bundle import tensors
from edgehisto.bundle.manifest import Bundle, StageSpec, load_bundle, sha256_of
from edgehisto.errors import ExportError

VARIANTS_FILE = "variants.json"
QUANT_VARIANTS = {  # one factor at a time away from export's default (QDQ, U8U8, per-channel, MinMax)
    "QDQ U8U8 per-channel MinMax": {}, "U8S8 7-bit weights": {"weight_type": "QInt8", "reduce_range": True},
    "QOperator": {"format": "QOperator"}, "per-tensor": {"per_channel": False},
    "activations QInt8 (S8S8)": {"activation_type": "QInt8", "weight_type": "QInt8"},
    "Entropy calibration": {"calibration_method": "Entropy"},
    "Percentile calibration": {"calibration_method": "Percentile"},
}


def _no_progress(_line: str) -> None:
    """The default progress callback: say nothing."""


def held_out_relpaths(bundle: Bundle) -> set[str]:
    """The bundle's held-out test tiles (``reference/test_split.csv``), never used to calibrate."""
    split = bundle.test_split
    if not split.is_file():
        return set()
    with open(split, newline="") as handle:
        return {row["relpath"] for row in csv.DictReader(handle)}


def calibration_set(bundle: Bundle, data_dir: Path, count: int, seed: int) -> tuple[np.ndarray, str]:
    """(preprocessed images, source) drawn as export draws them, from ``data_dir`` minus held-out tiles.

    Export calibrates on the run's training split; the bundle does not carry that, so the draw here
    comes from every tile of ``data_dir`` that is not one of the bundle's held-out test tiles.
    """
    from edgehisto.datasets.tasks import TASKS
    from edgehisto.export.calibration import calibration_images

    tiles = TASKS[bundle.task].scan(Path(data_dir))
    held_out = held_out_relpaths(bundle)
    pool = [p for p in tiles.relpaths if p not in held_out]
    if not pool:
        raise ExportError(f"no tiles left to calibrate on in {data_dir} once the held-out tiles are removed")
    images = calibration_images(tiles.root, pool, bundle.preprocess, count, seed)
    left_out = len(tiles.relpaths) - len(pool)
    return images, f"{data_dir} ({len(pool)} tiles, {left_out} held-out tiles of the bundle left out)"


def nchw_backbone(bundle: Bundle, stage: StageSpec, out: Path) -> Path:
    """Convert the stage's reference Keras backbone again with tf2onnx ``inputs_as_nchw=["image"]``."""
    import keras
    import onnx
    import tensorflow as tf
    import tf2onnx

    from edgehisto.export.convert import OPSET, rename_tensor, split_at
    from edgehisto.export.converter_output import quiet_converter

    names = stage.reference_outputs
    model = keras.models.load_model(bundle.file(stage.reference_keras), compile=False)
    backbone = split_at(model, stage.gradcam_layer, names["logits"], names["probabilities"]).backbone
    signature = (tf.TensorSpec((None, *backbone.input.shape[1:]), tf.float32, name=tensors.IMAGE),)
    with quiet_converter():
        proto, _ = tf2onnx.convert.from_keras(backbone, input_signature=signature, opset=OPSET,
                                              inputs_as_nchw=[tensors.IMAGE])
    rename_tensor(proto, proto.graph.output[0].name, tensors.ACTIVATIONS)  # the input keeps its name
    onnx.save(proto, out)
    return out


def transposes(model: Path) -> dict:
    """Transpose nodes in ``model``, and left after onnxruntime optimised it as the runtime would."""
    import onnx

    from edgehisto.runtime.sessions import make_session

    def count(path: Path) -> int:
        return sum(node.op_type == "Transpose" for node in onnx.load(str(path)).graph.node)

    with tempfile.TemporaryDirectory() as scratch:
        optimized = Path(scratch) / "optimized.onnx"
        make_session(model, optimized_model_path=optimized)
        return {"in_file": count(model), "after_onnxruntime": count(optimized)}


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _describe(name: str, kind: str, precision: str, layout: str, path: Path, **extra) -> dict:
    return {"name": name, "kind": kind, "precision": precision, "layout": layout, "file": path.name,
            "sha256": sha256_of(path), "bytes": path.stat().st_size, **extra, "transposes": transposes(path)}


def export_variants(bundle_dir: Path, data_dir: Path, out_dir: Path,
                    log: Callable[[str], None] = _no_progress) -> dict:
    """Write the variant backbones of a bundle's entry stage and ``variants.json`` into ``out_dir``.

    Calibration uses the bundle's recorded image count and seed (128 and 0 when not recorded).

    Returns:
        The ``variants.json`` description (see the module docstring).
    """
    from edgehisto.export.quantize import QuantizationChoice, quantize_backbone

    bundle = load_bundle(bundle_dir)
    stage = bundle.stages[bundle.entry_stage]
    seed = bundle.training_seed
    count = int(bundle.quantization(stage.name).get("calibration_images") or 128)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log(f"export-variants {bundle_dir}: calibration draw of {count} tiles from {data_dir}")
    calibration, source = calibration_set(bundle, data_dir, count, seed)
    fp32 = bundle.file(stage.backbone("fp32"))
    variants = []
    for name, override in QUANT_VARIANTS.items():
        log(f"  quantising variant {name!r}")
        path = out_dir / f"int8-{_slug(name)}.onnx"
        choice = quantize_backbone(fp32, path, calibration, QuantizationChoice(**override))
        variants.append(_describe(name, "quantization", "int8", "NHWC", path, quantization=choice.to_dict()))
    log("  converting the reference backbone with inputs_as_nchw")
    nchw = nchw_backbone(bundle, stage, out_dir / "nchw.fp32.onnx")
    variants.append(_describe("NCHW fp32", "layout", "fp32", "NCHW", nchw))
    choice = quantize_backbone(nchw, out_dir / "nchw.int8.onnx", calibration.transpose(0, 3, 1, 2),
                               QuantizationChoice())
    variants.append(_describe("NCHW int8", "layout", "int8", "NCHW", out_dir / "nchw.int8.onnx",
                              quantization=choice.to_dict()))
    description = {
        "bundle": {"path": str(bundle_dir), "stage": stage.name,
                   "backbone_fp32_sha256": bundle.files[stage.backbone("fp32")].sha256},
        "calibration": {"source": source, "n": len(calibration), "seed": seed},
        "bundle_backbones": {p: {"transposes": transposes(bundle.file(stage.backbone(p)))} for p in ("fp32", "int8")},
        "variants": variants,
    }
    (out_dir / VARIANTS_FILE).write_text(json.dumps(description, indent=2) + "\n")
    return description
