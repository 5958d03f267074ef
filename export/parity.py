"""Parity gates: every exported stage is checked against the Keras model it came from.

Gates (thresholds are options of ``check-parity``):
* ``onnx_fp32_max_abs_prob_diff``: ONNX fp32 vs Keras, max |p_onnx - p_keras| <= 1e-4;
* ``onnx_int8_top1_agreement``: int8 argmax equals Keras argmax on >= 97% of tiles;
* ``onnx_int8_accuracy_drop``: Keras accuracy - int8 accuracy <= 1 point;
* ``tflite_fp32_max_abs_prob_diff``, ``tflite_int8_top1_agreement``, ``tflite_int8_accuracy_drop``:
  the same three gates for the LiteRT (TFLite) fp32 and full-integer int8 files;
* ``gradcam_fp32_min_pearson``: runtime Grad-CAM (fp32) vs GradientTape, every map r >= 0.99;
* ``gradcam_int8_mean_pearson``: runtime Grad-CAM from the int8 backbone vs GradientTape, mean
  r >= 0.95 (int8 activations legitimately differ map by map; the minimum is reported).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgehisto.bundle.gates import Gate, GateVerdict, Thresholds, format_gates, pearson
from edgehisto.bundle.manifest import PRECISIONS, Bundle, load_bundle
from edgehisto.bundle.manifest_writer import update_manifest
from edgehisto.bundle.preprocess import load_resized, normalize
from edgehisto.datasets.labelled import labelled_tiles
from edgehisto.runtime.classifier import Classifier


@dataclass
class ParityReport(GateVerdict):
    """Every gate of one ``check-parity`` run, plus values that are reported but not gated."""

    bundle: str
    data: str
    n_tiles: int
    n_gradcam: int
    gates: list[Gate] = field(default_factory=list)
    reported: dict = field(default_factory=dict)


class KerasReferences:
    """Keras reference models of a bundle, loaded once per file, viewed per stage.

    ``stage(name)`` returns (model, output layer names), the ``reference`` callable the golden
    set writer takes.
    """

    def __init__(self, bundle: Bundle):
        self.bundle, self._models = bundle, {}

    def stage(self, name: str):
        """(Keras model, output layer names) of one stage, loading its file on first use."""
        import keras

        stage = self.bundle.stages[name]
        path = stage.reference_keras
        if path not in self._models:
            self._models[path] = keras.models.load_model(self.bundle.file(path), compile=False)
        return self._models[path], stage.reference_outputs


def check_parity(bundle_dir: Path, data_dir: Path | None = None, thresholds: Thresholds | None = None,
                 limit: int = 512, gradcam_limit: int = 64) -> ParityReport:
    """Run every gate for every stage of a bundle (and its routing); returns the report."""
    thresholds = thresholds or Thresholds()
    import keras

    from edgehisto.datasets.tasks import TASKS, routed_labels
    from edgehisto.export.gradcam_tf import keras_probabilities, tf_gradcam

    bundle = load_bundle(bundle_dir)
    task = TASKS[bundle.task]
    root, relpaths, labels = labelled_tiles(bundle, data_dir, limit)
    truth = task.stage_labels(labels)
    spec = bundle.preprocess
    x = normalize(np.stack([load_resized(root / p, spec) for p in relpaths]), spec)
    # Paths relative to where the check ran: a report that ships in a bundle carries no machine path.
    report = ParityReport(os.path.relpath(bundle_dir), os.path.relpath(root), len(relpaths), 0)
    runtimes = {p: Classifier(bundle, precision=p, allow_failed_parity=True) for p in PRECISIONS}
    references, keras_top1 = KerasReferences(bundle), {}
    for name, stage in bundle.stages.items():
        model, outputs = references.stage(name)
        rows = np.flatnonzero(truth[name] >= 0)
        xs, ys = x[rows], truth[name][rows]
        stage_model = keras.Model(model.input, model.get_layer(outputs["probabilities"]).output)
        keras_top1[name] = keras_probabilities(stage_model, x, stage.output).argmax(1)
        reference = keras_probabilities(stage_model, xs, stage.output)
        probs = {p: rt.head(rt.activations(xs, stage), stage)[1] for p, rt in runtimes.items()}
        report.gate(name, "onnx_fp32_max_abs_prob_diff", np.abs(probs["fp32"] - reference).max(),
                    thresholds.fp32_max_abs_diff, "<=")
        ref_top1, int8_top1 = reference.argmax(1), probs["int8"].argmax(1)
        report.gate(name, "onnx_int8_top1_agreement", np.mean(ref_top1 == int8_top1),
                    thresholds.int8_min_agreement, ">=")
        keras_acc, int8_acc = np.mean(ref_top1 == ys), np.mean(int8_top1 == ys)
        report.gate(name, "onnx_int8_accuracy_drop", keras_acc - int8_acc, thresholds.int8_max_accuracy_drop, "<=")
        if "tflite_fp32" in stage.files:
            _tflite_gates(report, bundle, stage, xs, reference, ys, thresholds)
        n_cam = min(gradcam_limit, len(rows))
        report.n_gradcam = max(report.n_gradcam, n_cam)
        tf_maps = tf_gradcam(model, stage.gradcam_layer, stage.output, xs[:n_cam], ref_top1[:n_cam],
                             logits=outputs["logits"])
        r = {p: [pearson(a, b) for a, b in zip(tf_maps, rt.gradcam(xs[:n_cam], name, ref_top1[:n_cam]), strict=True)]
             for p, rt in runtimes.items()}
        report.gate(name, "gradcam_fp32_min_pearson", min(r["fp32"]), thresholds.gradcam_min_pearson, ">=")
        report.gate(name, "gradcam_int8_mean_pearson", np.mean(r["int8"]), thresholds.gradcam_int8_min_mean_pearson,
                    ">=")
        report.reported.setdefault(name, {}).update({
            "n_tiles": len(rows), "keras_accuracy": float(keras_acc),
            "onnx_fp32_accuracy": float(np.mean(probs["fp32"].argmax(1) == ys)),
            "onnx_int8_accuracy": float(int8_acc),
            "onnx_int8_max_abs_prob_diff": float(np.abs(probs["int8"] - reference).max()),
            "gradcam_fp32_mean_pearson": float(np.mean(r["fp32"])),
            "gradcam_int8_min_pearson": float(np.min(r["int8"])),
        })
    if bundle.routing:
        _routed_gates(report, task, bundle, runtimes, x, labels, routed_labels(task, keras_top1), thresholds)
    return report


def _routed_gates(report: ParityReport, task, bundle: Bundle, runtimes: dict, x: np.ndarray, labels: np.ndarray,
                  keras_routed: np.ndarray, thresholds: Thresholds) -> None:
    """The end-to-end label after routing, from the runtime's own routing code, vs Keras routing."""
    from edgehisto.datasets.tasks import END_TO_END_CLASSES

    classes = END_TO_END_CLASSES[task.name]
    routed = {}
    for precision, runtime in runtimes.items():
        results = runtime.classify_tensor(x)
        routed[precision] = np.array([classes.index(r.stages[-1].label) for r in results])
    # fp32 may only differ from Keras where a probability sits within ~1e-7 of a tie.
    report.gate("routed", "onnx_fp32_label_agreement", np.mean(routed["fp32"] == keras_routed), 0.999, ">=")
    report.gate("routed", "onnx_int8_label_agreement", np.mean(routed["int8"] == keras_routed),
                thresholds.int8_min_agreement, ">=")
    report.gate("routed", "onnx_int8_accuracy_drop",
                np.mean(keras_routed == labels) - np.mean(routed["int8"] == labels),
                thresholds.int8_max_accuracy_drop, "<=")
    report.reported["routed"] = {"keras_accuracy": float(np.mean(keras_routed == labels)),
                                 "onnx_int8_accuracy": float(np.mean(routed["int8"] == labels))}


def _tflite_gates(report: ParityReport, bundle: Bundle, stage, x: np.ndarray, reference: np.ndarray,
                  labels: np.ndarray, thresholds: Thresholds) -> None:
    """The same fp32 and int8 gates for the LiteRT (TFLite) files of a stage."""
    from edgehisto.bundle.litert import LiteRTModel, probabilities
    from edgehisto.export.converter_output import quiet_converter

    with quiet_converter():  # the interpreter announces its XNNPACK delegate on fd 2
        models = {p: LiteRTModel(bundle.file(stage.files[f"tflite_{p}"]), output=stage.tflite_output)
                  for p in PRECISIONS}
        probs = {p: probabilities(model.predict(x), stage.output) for p, model in models.items()}
    report.gate(stage.name, "tflite_fp32_max_abs_prob_diff", np.abs(probs["fp32"] - reference).max(),
                thresholds.fp32_max_abs_diff, "<=")
    top1 = probs["int8"].argmax(1)
    report.gate(stage.name, "tflite_int8_top1_agreement", np.mean(top1 == reference.argmax(1)),
                thresholds.int8_min_agreement, ">=")
    report.gate(stage.name, "tflite_int8_accuracy_drop",
                np.mean(reference.argmax(1) == labels) - np.mean(top1 == labels),
                thresholds.int8_max_accuracy_drop, "<=")
    report.reported.setdefault(stage.name, {})["tflite_int8_max_abs_prob_diff"] = float(
        np.abs(probs["int8"] - reference).max())


def write_report(bundle_dir: Path, report: ParityReport) -> Path:
    """Write ``parity.json`` into the bundle and record the verdict in the manifest."""
    path = Path(bundle_dir) / "parity.json"
    path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    # The listing stays as it is: parity.json is never listed, and the bundle's files did not change.
    update_manifest(bundle_dir, hash_files=False,
                    parity={"passed": report.passed, "report": "parity.json", "n_tiles": report.n_tiles})
    return path


def format_table(report: ParityReport) -> str:
    """The gates as an aligned text table with a verdict line."""
    lines = format_gates(report.gates, report.reported)
    verdict = "all parity gates pass" if report.passed else "PARITY FAILED"
    lines.append(f"{verdict} ({report.n_tiles} tiles, {report.n_gradcam} Grad-CAM maps, data: {report.data})")
    return "\n".join(lines)
