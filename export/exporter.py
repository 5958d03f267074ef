"""Run directory -> bundle: ONNX fp32/int8 backbones, fp32 heads, gradient graphs, manifest.

Bundle layout (everything the runtime needs; ``manifest.json`` describes it)::

    manifest.json
    <stage>/backbone.fp32.onnx   image -> Grad-CAM layer activations
    <stage>/backbone.int8.onnx   the same, QDQ int8
    <stage>/head.onnx            activations -> logits, probabilities (fp32)
    <stage>/head_gradient.onnx   activations, seed -> d(seed . logits)/d(activations)
    <stage>/model.fp32.tflite    the whole model for LiteRT, float32
    <stage>/model.int8.tflite    the whole model, full-integer int8 (int8 input and output)
    shared/...                   (multitask) the one backbone and TFLite pair all stages use
    reference/<stage>.keras      the Keras model the parity gates compare against
    reference/test_split.csv     the run's held-out tiles (names only), the default parity data
    parity.json                  the last parity report
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import onnx

from edgehisto.bundle import tensors
from edgehisto.bundle.manifest import MANIFEST, PRECISIONS, SCHEMA_VERSION, TEST_SPLIT, Bundle
from edgehisto.bundle.manifest_writer import file_entries, write_manifest
from edgehisto.bundle.provenance import provenance
from edgehisto.datasets.run_info import RUN_INFO, RunInfo, run_info_file
from edgehisto.datasets.splits import read_split
from edgehisto.datasets.tasks import TASKS
from edgehisto.errors import ExportError
from edgehisto.export.calibration import calibration_draw, preprocessed_tiles
from edgehisto.export.convert import OPSET, split_at, to_onnx
from edgehisto.export.golden import display_peaks, write_golden_set
from edgehisto.export.onnx_grad import build_gradient_model
from edgehisto.export.quantize import QuantizationChoice, quantize_backbone
from edgehisto.export.tflite import convert_tflite_fp32, convert_tflite_int8

_LOG = logging.getLogger(__name__)  # default progress sink; the CLI passes its own


@dataclass(frozen=True)
class StageSource:
    """One trained stage of a run: where its Keras model is and how to read its output."""

    name: str
    model_path: Path
    class_names: list[str]
    output: str
    gradcam_layer: str
    logits_layer: str = "logits"
    probabilities_layer: str = "probabilities"


def stages_of_run(run_dir: Path, run: RunInfo, gradcam_layer: str | None) -> list[StageSource]:
    """The stages a run directory holds (IDC: one, named after its task; BreaKHis: three)."""
    if run.stages is None:
        return [StageSource(run.task, run_dir / "model.keras", run.class_names, run.output,
                            gradcam_layer or run.gradcam_layer)]
    return [StageSource(s.name, run_dir / s.model_file, s.class_names, s.output, gradcam_layer or s.gradcam_layer,
                        s.logits_layer, s.probabilities_layer)
            for s in run.stages]


def export_stage(stage: StageSource, out_dir: Path, calibration, choice: QuantizationChoice,
                 log: Callable[[str], None], shared: dict, backbone_dir: str,
                 tflite: bool = True) -> tuple[dict, dict]:
    """Write one stage's files; returns (manifest stage entry, quantisation record).

    ``shared`` caches loaded models and maps (model file, layer) to the backbone and TFLite files
    already written, so the stages of a multitask model point at one copy (in ``backbone_dir``).
    """
    loaded = ("model", stage.model_path.resolve())
    if loaded not in shared:  # a multitask model serves three stages: load it once
        shared[loaded] = keras.models.load_model(stage.model_path, compile=False)
    model = shared[loaded]
    parts = split_at(model, stage.gradcam_layer, stage.logits_layer, stage.probabilities_layer)
    folder = out_dir / stage.name
    folder.mkdir(parents=True, exist_ok=True)
    key = (stage.model_path.resolve(), stage.gradcam_layer)
    files = {"head": f"{stage.name}/head.onnx", "head_gradient": f"{stage.name}/head_gradient.onnx"}
    if key not in shared:
        shared[key] = _export_shared(model, parts, stage.name, out_dir, backbone_dir, calibration, choice, log,
                                     tflite)
    files.update(shared[key]["files"])
    record = shared[key]["record"]
    log(f"[{stage.name}] converting the head and building its exact gradient graph")
    head = to_onnx(parts.head, tensors.ACTIVATIONS, [tensors.LOGITS, tensors.PROBABILITIES])
    onnx.save(head, out_dir / files["head"])
    onnx.save(build_gradient_model(head), out_dir / files["head_gradient"])
    reference = out_dir / "reference" / stage.model_path.name
    reference.parent.mkdir(exist_ok=True)
    if not reference.exists():
        model.save(reference)  # loaded with compile=False: no optimizer state in the bundle
    entry = {
        "class_names": list(stage.class_names), "output": stage.output,
        "gradcam_layer": stage.gradcam_layer, "activations_shape": list(parts.activations_shape),
        "n_params": int(model.count_params()), "files": files,
        "reference_keras": f"reference/{stage.model_path.name}",
        "reference_outputs": {"logits": stage.logits_layer, "probabilities": stage.probabilities_layer},
        # A multi-output TFLite file (multitask) names each stage's output; single-output: output_0.
        "tflite_output": stage.probabilities_layer if len(model.outputs) > 1 else "output_0",
    }
    if not tflite:
        del entry["tflite_output"]
    return entry, record


def _export_shared(model, parts, stage_name: str, out_dir: Path, folder: str, calibration,
                   choice: QuantizationChoice, log: Callable[[str], None], tflite: bool) -> dict:
    """Files written once per Keras model: ONNX backbone fp32/int8 and TFLite fp32/int8."""
    (out_dir / folder).mkdir(exist_ok=True)
    files = {f"backbone_{p}": f"{folder}/backbone.{p}.onnx" for p in PRECISIONS}
    log(f"[{stage_name}] converting the backbone with tf2onnx (opset {OPSET})")
    onnx.save(to_onnx(parts.backbone, tensors.IMAGE, [tensors.ACTIVATIONS]), out_dir / files["backbone_fp32"])
    log(f"[{stage_name}] int8 quantisation, calibrated on {len(calibration)} training images")
    record = quantize_backbone(out_dir / files["backbone_fp32"], out_dir / files["backbone_int8"],
                               calibration, choice).to_dict()
    if tflite:
        log(f"[{stage_name}] TFLite fp32 and full-integer int8 (same calibration images)")
        files.update({f"tflite_{p}": f"{folder}/model.{p}.tflite" for p in PRECISIONS})
        convert_tflite_fp32(model, out_dir / files["tflite_fp32"])
        convert_tflite_int8(model, out_dir / files["tflite_int8"], calibration)
    return {"files": files, "record": record}


def export_run(run_dir: Path, out_dir: Path, *, gradcam_layer: str | None = None,
               calibration_count: int = 128, choice: QuantizationChoice | None = None,
               tflite: bool = True, log: Callable[[str], None] = _LOG.info) -> Path:
    """Export a run directory into a bundle directory and return the manifest path.

    ``tflite=False`` skips the TFLite files (faster export; the LiteRT gates then do not apply).
    """
    choice = choice or QuantizationChoice()
    if not run_info_file(run_dir).is_file():
        raise ExportError(f"{run_dir} is not a finished run directory (no {RUN_INFO})")
    run = RunInfo.load(run_dir)
    spec = run.preprocess
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / MANIFEST).exists():
            raise ExportError(f"{out_dir} exists and is not a bundle; refusing to overwrite it")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Tiles training could not load (slide-edge slivers under the minimum side) cannot calibrate, be
    # golden or be gated either: the held-out listing and the draws leave them out.
    unloadable = {relpath for failures in (run.load_failures or {}).values() for relpath, _ in failures}
    rows = [r for r in read_split(run_dir) if r["relpath"] not in unloadable]
    train_rows = [r["relpath"] for r in rows if r["side"] == "train"]
    # One draw of training tiles calibrates int8 and is the golden set's candidate pool.
    drawn = calibration_draw(train_rows, calibration_count, run.config["seed"])
    calibration = preprocessed_tiles(run.data_dir, drawn, spec)
    stages, quantization = {}, {}
    shared: dict = {}
    stage_sources = stages_of_run(run_dir, run, gradcam_layer)
    sources_by_stage = {source.name: source for source in stage_sources}
    uses = Counter(source.model_path for source in stage_sources)
    for stage in stage_sources:
        backbone_dir = "shared" if uses[stage.model_path] > 1 else stage.name
        stages[stage.name], quantization[stage.name] = export_stage(
            stage, out_dir, calibration, choice, log, shared, backbone_dir, tflite)
    _write_test_split(out_dir / "reference" / "test_split.csv", rows)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "format": "edgehisto-bundle",
        "task": run.task,
        "name": out_dir.name,
        "preprocess": spec.to_dict(),
        **_expected_input(run.task),
        "entry_stage": next(iter(stages)),
        "arch": run.arch or "single",
        "routing": run.routing or {},
        "stages": stages,
        "quantization": quantization,
        # Paths relative to where export ran (the project root for make targets): a bundle that
        # travels must not carry this machine's absolute paths.
        "reference": {"data_root": os.path.relpath(run.data_dir), "test_split": TEST_SPLIT},
        "training": {"run_dir": os.path.relpath(run_dir), "config": run.config,
                     "test_metrics": _test_metrics(run_dir)},
        "provenance": provenance({"run_dir": os.path.relpath(run_dir), "gradcam_layer": gradcam_layer,
                                  "calibration_images": calibration_count}),
    }
    manifest["files"] = file_entries(out_dir)  # the runtime runs only hashed files
    for name, peak in display_peaks(out_dir, manifest, calibration).items():
        stages[name]["gradcam_display_peak"] = peak
    log(f"golden set: expected outputs of up to {len(calibration)} calibration tiles")
    sources = [run.data_dir / relpath for relpath in drawn]
    manifest["golden"] = write_golden_set(Bundle(out_dir, manifest), sources,
                                          _reference_models(sources_by_stage, shared), origins=list(drawn))
    return write_manifest(out_dir, manifest)


def _expected_input(task: str) -> dict:
    """The manifest's ``expected_input`` of a task (the runtime's input guard), if it declares one."""
    declared = TASKS[task].expected_input if task in TASKS else None
    return {"expected_input": declared.to_dict()} if declared else {}


def _reference_models(sources: dict[str, StageSource], shared: dict):
    """``stage name -> (keras model, output layer names)`` from the models export loaded."""
    def reference(name: str):
        stage = sources[name]
        outputs = {"logits": stage.logits_layer, "probabilities": stage.probabilities_layer}
        return shared[("model", stage.model_path.resolve())], outputs
    return reference


def _write_test_split(path: Path, rows: list[dict]) -> None:
    """The held-out tiles (names and task-level labels only; the images stay where they are)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["relpath", "label"])
        writer.writerows([row["relpath"], row["label"]] for row in rows if row["side"] == "test")


def _test_metrics(run_dir: Path) -> dict | None:
    path = run_dir / "test_metrics.json"
    if not path.exists():
        return None
    metrics = json.loads(path.read_text())
    return {k: metrics[k] for k in ("n", "accuracy", "balanced_accuracy", "macro_f1")}
