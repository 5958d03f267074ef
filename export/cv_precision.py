"""A grouped CV's fold models exported and scored at fp32 and int8: the CV at the precision that ships.

``train breakhis-cv --keep-models`` leaves, beside ``cv.json``, each fold's Keras model and
``held_out.csv`` (every held-out field's Keras probability). ``cv_precision`` exports each fold model
as ``edgehisto export`` exports a stage (tf2onnx backbone cut at the Grad-CAM layer, fp32 head, the
backbone quantised with a given ``QuantizationChoice`` and calibrated on a seeded draw of that
fold's **training** fields), then scores the fold's held-out fields with onnxruntime on the
runtime's own preprocessing and session settings. Each precision is checked against the stage
before it: ONNX fp32 against Keras, int8 against ONNX fp32 (top-1 agreement, max |dp|).
"""

from __future__ import annotations

import csv
import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgehisto.bundle import tensors
from edgehisto.bundle.manifest import PRECISIONS
from edgehisto.errors import ExportError
from edgehisto.export.calibration import calibration_draw, preprocessed_tiles
from edgehisto.export.exporter import StageSource, export_stage
from edgehisto.export.quantize import QuantizationChoice
from edgehisto.metrics.scores import binary_figures, patient_vote
from edgehisto.runtime.sessions import make_session
from edgehisto.train.breakhis import breakhis_preprocess_spec
from edgehisto.train.models import model_spec
from edgehisto.train.starts import CV_RECORD, FOLD_MODEL, HELD_OUT, CVConfig, summarize_cv

CV_PRECISION = "cv_precision.json"
_LOG = logging.getLogger(__name__)  # default progress sink; the CLI passes its own
_CV_MODEL = "densenet121"  # grouped_cv trains this registered model


def cv_precision(cv_dir: Path, data_dir: Path, choice: QuantizationChoice, calibration_count: int = 128,
                 log: Callable[[str], None] = _LOG.info) -> dict:
    """Per fold and start: held-out figures of Keras, ONNX fp32 and int8, and their agreement.

    Writes ``cv_precision.json`` in ``cv_dir`` after every fold and returns the record; its
    ``summary`` has the same shape as ``cv.json``'s, one entry per (start, precision).
    """
    from edgehisto.datasets.breakhis import scan_breakhis

    record, held_out = _read_cv(cv_dir)
    config = CVConfig(**{k: v for k, v in record["config"].items() if k in CVConfig.__dataclass_fields__})
    if config.field_geometry != "squash":
        raise ExportError(f"{cv_dir}: a {config.field_geometry} CV scores crops of fields; cv-precision scores "
                          "squashed whole fields only")
    spec = breakhis_preprocess_spec(config.input_size, config.colour_normalise)
    dataset = scan_breakhis(data_dir)
    every = list(dataset.relpaths)
    missing = sorted({row["relpath"] for row in held_out} - set(every))
    if missing:
        raise ExportError(f"{data_dir} does not hold the fields {cv_dir} held out (first: {missing[0]}); "
                          "give the data directory the CV ran on")
    gradcam_layer = model_spec(_CV_MODEL).gradcam_layer
    result = {"cv": str(cv_dir.name), "config": record["config"], "quantization": choice.to_dict(),
              "calibration_images": calibration_count, "levels": ["keras", *PRECISIONS], "folds": []}
    for fold in record["folds"]:
        entry = {"fold": fold["fold"], "starts": {}}
        for name in fold["starts"]:
            model_path = cv_dir / FOLD_MODEL.format(fold=fold["fold"], start=name)
            if not model_path.is_file():
                raise ExportError(f"{model_path.name} is missing: run `train breakhis-cv` with --keep-models")
            rows = [r for r in held_out if int(r["fold"]) == fold["fold"] and r["start"] == name]
            if len(rows) != fold["starts"][name]["image"]["n"]:
                raise ExportError(f"{HELD_OUT} has {len(rows)} fields of fold {fold['fold']} {name}; "
                                  f"{CV_RECORD} counts {fold['starts'][name]['image']['n']}")
            held = {r["relpath"] for r in rows}
            train = [relpath for relpath in every if relpath not in held]
            log(f"fold {fold['fold'] + 1}/{len(record['folds'])} {name}: exporting, calibrating int8 on "
                f"{min(calibration_count, len(train))} of its {len(train)} training fields")
            calibration = preprocessed_tiles(dataset.root, calibration_draw(train, calibration_count, config.seed),
                                             spec)
            images = preprocessed_tiles(dataset.root, [r["relpath"] for r in rows], spec)
            stage = StageSource("binary", model_path, ["benign", "malignant"], "softmax", gradcam_layer)
            probabilities = _onnx_probabilities(stage, calibration, images, choice)
            probabilities["keras"] = np.array([float(r["p_malignant"]) for r in rows])
            entry["starts"][name] = _scores(rows, probabilities)
            levels = entry["starts"][name]
            log(f"fold {fold['fold'] + 1} {name}: held-out balanced accuracy keras "
                f"{levels['keras']['image']['balanced_accuracy']:.3f}, fp32 "
                f"{levels['fp32']['image']['balanced_accuracy']:.3f}, int8 "
                f"{levels['int8']['image']['balanced_accuracy']:.3f} (int8 vs fp32 agreement "
                f"{levels['int8']['agreement']['top1']:.3f}, max |dp| {levels['int8']['agreement']['max_abs_dp']:.4f})")
        result["folds"].append(entry)
        result["summary"] = _summary(result)
        (cv_dir / CV_PRECISION).write_text(json.dumps(result, indent=2))
    return result


def _read_cv(cv_dir: Path) -> tuple[dict, list[dict]]:
    record_path, held_path = cv_dir / CV_RECORD, cv_dir / HELD_OUT
    for path in (record_path, held_path):
        if not path.is_file():
            raise ExportError(f"{cv_dir} is not a breakhis-cv run directory (no {path.name})")
    try:
        record = json.loads(record_path.read_text())
        with open(held_path, newline="") as handle:
            held_out = list(csv.DictReader(handle))
    except ValueError as problem:
        raise ExportError(f"{cv_dir}: unreadable CV record ({problem})") from None
    if not isinstance(record, dict) or not {"config", "folds"} <= record.keys():
        raise ExportError(f"{record_path} is not a breakhis-cv record (no config and folds)")
    return record, held_out


def _onnx_probabilities(stage: StageSource, calibration: np.ndarray, images: np.ndarray,
                        choice: QuantizationChoice) -> dict[str, np.ndarray]:
    """Malignant probability of every image at each precision, through the files export writes."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        entry, _ = export_stage(stage, out, calibration, choice, lambda _line: None, {}, stage.name, tflite=False)
        head = make_session(out / entry["files"]["head"])
        result = {}
        for precision in PRECISIONS:
            backbone = make_session(out / entry["files"][f"backbone_{precision}"])
            batches = []
            for start in range(0, len(images), 32):
                activations = backbone.run([tensors.ACTIVATIONS], {tensors.IMAGE: images[start:start + 32]})[0]
                batches.append(head.run([tensors.PROBABILITIES], {tensors.ACTIVATIONS: activations})[0])
            result[precision] = np.concatenate(batches)[:, 1].astype(np.float64)
    return result


def _scores(rows: list[dict], probabilities: dict[str, np.ndarray]) -> dict:
    """Image and slide figures per level, and each level's agreement with the one before it."""
    truth = np.array([int(r["malignant"]) for r in rows])
    groups = np.array([r["group"] for r in rows])
    scores, before = {}, None
    for level in ("keras", *PRECISIONS):
        p = probabilities[level]
        two = np.stack([1 - p, p], axis=1)
        slide_truth, slide_pred = patient_vote(truth, two, groups)
        scores[level] = {"image": binary_figures(truth, (p > 0.5).astype(int)),
                         "patient": binary_figures(slide_truth, slide_pred)}
        if before is not None:
            previous = probabilities[before]
            scores[level]["agreement"] = {"against": before,
                                          "top1": float(((p > 0.5) == (previous > 0.5)).mean()),
                                          "max_abs_dp": float(np.abs(p - previous).max())}
        before = level
    return scores


def _summary(result: dict) -> dict:
    """Mean and sd over folds per (start, level): ``summarize_cv`` on one record per level."""
    starts = sorted({name for fold in result["folds"] for name in fold["starts"]})
    summary = {}
    for level in result["levels"]:
        per_level = {"starts": {name: None for name in starts},
                     "folds": [{"starts": {name: levels[level] for name, levels in fold["starts"].items()}}
                               for fold in result["folds"]]}
        for name, figures in summarize_cv(per_level).items():
            summary.setdefault(name, {})[level] = figures
    return summary
