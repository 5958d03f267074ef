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
from edgehisto.bundle.gates import Thresholds
from edgehisto.bundle.manifest import PRECISIONS
from edgehisto.errors import ExportError
from edgehisto.export.calibration import calibration_draw, preprocessed_tiles
from edgehisto.export.exporter import StageSource, export_stage
from edgehisto.export.quantize import QuantizationChoice
from edgehisto.metrics.scores import binary_figures, patient_vote
from edgehisto.runtime.sessions import make_session
from edgehisto.train.breakhis import breakhis_preprocess_spec
from edgehisto.train.models import model_spec
from edgehisto.train.starts import CV_MODEL, CV_RECORD, FOLD_MODEL, HELD_OUT, HELD_OUT_COLUMNS, CVConfig, summarize_cv

CV_PRECISION = "cv_precision.json"
_LOG = logging.getLogger(__name__)  # default progress sink; the CLI passes its own


def cv_precision(cv_dir: Path, data_dir: Path, choice: QuantizationChoice, calibration_count: int = 128,
                 log: Callable[[str], None] = _LOG.info) -> dict:
    """Per fold and start: held-out figures of Keras, ONNX fp32 and int8, and their agreement.

    Writes ``cv_precision.json`` in ``cv_dir`` after every fold and returns the record; its
    ``summary`` has the same shape as ``cv.json``'s, one entry per (start, precision).
    """
    import keras

    from edgehisto.datasets.breakhis import scan_breakhis, split_groups

    record, held_out = _read_cv(cv_dir)
    try:
        config = CVConfig(**{k: v for k, v in record["config"].items() if k in CVConfig.__dataclass_fields__})
    except (TypeError, ValueError) as problem:
        raise ExportError(f"{cv_dir / CV_RECORD}: its config does not read ({problem})") from None
    if config.field_geometry != "squash":
        raise ExportError(f"{cv_dir}: a {config.field_geometry} CV scores crops of fields; cv-precision scores "
                          "squashed whole fields only")
    spec = breakhis_preprocess_spec(config.input_size, config.colour_normalise)
    dataset = scan_breakhis(data_dir)
    every, groups = list(dataset.relpaths), [str(g) for g in split_groups(dataset, config.split_key)]
    if len(every) != record.get("n_images") or {r["relpath"] for r in held_out} - set(every):
        raise ExportError(f"{data_dir} ({len(every)} fields) is not the data {cv_dir} ran on "
                          f"({record.get('n_images')} fields); give the data directory the CV ran on")
    gate = Thresholds().fp32_max_abs_diff
    # Each fold records how many of its training fields calibrated it (at most calibration_count).
    quantization = {key: value for key, value in choice.to_dict().items() if key != "calibration_images"}
    result = {"cv": cv_dir.name, "config": record["config"], "quantization": quantization,
              "calibration_requested": calibration_count, "levels": ["keras", *PRECISIONS], "folds": []}
    for fold in record["folds"]:
        entry = {"fold": fold["fold"], "starts": {}}
        # Every start of a fold trained on the same slides: one calibration draw serves them all.
        train = training_fields(every, groups, fold["held_out_groups"])
        calibration = preprocessed_tiles(dataset.root, calibration_draw(train, calibration_count, config.seed), spec)
        for name in fold["starts"]:
            model_path = cv_dir / FOLD_MODEL.format(fold=fold["fold"], start=name)
            if not model_path.is_file():
                raise ExportError(f"{model_path.name} is missing: run `train breakhis-cv` with --keep-models")
            rows = [r for r in held_out if r["fold"] == str(fold["fold"]) and r["start"] == name]
            if len(rows) != fold["starts"][name]["image"]["n"]:
                raise ExportError(f"{HELD_OUT} has {len(rows)} fields of fold {fold['fold']} {name}; "
                                  f"{CV_RECORD} counts {fold['starts'][name]['image']['n']}")
            log(f"fold {fold['fold'] + 1}/{len(record['folds'])} {name}: exporting, calibrating int8 on "
                f"{len(calibration)} of its {len(train)} training fields")
            images = preprocessed_tiles(dataset.root, [r["relpath"] for r in rows], spec)
            stage = StageSource("binary", model_path, ["benign", "malignant"], "softmax",
                                model_spec(CV_MODEL).gradcam_layer)
            probabilities = _onnx_probabilities(stage, calibration, images, choice)
            keras.backend.clear_session()  # export loaded the fold model
            probabilities["keras"] = np.array([float(r["p_malignant"]) for r in rows])
            levels = entry["starts"][name] = {**_scores(rows, probabilities), "calibration_images": len(calibration)}
            drift = levels["fp32"]["agreement"]["max_abs_dp"]
            if drift > gate:
                raise ExportError(f"fold {fold['fold']} {name}: ONNX fp32 differs from {HELD_OUT}'s Keras "
                                  f"probabilities by up to {drift:.2g} (gate {gate:g}); {model_path.name} is not "
                                  "the model that scored them")
            log(f"fold {fold['fold'] + 1} {name}: held-out balanced accuracy keras "
                f"{_figure(levels['keras']['image']['balanced_accuracy'])}, fp32 "
                f"{_figure(levels['fp32']['image']['balanced_accuracy'])}, int8 "
                f"{_figure(levels['int8']['image']['balanced_accuracy'])} (int8 vs fp32 agreement "
                f"{levels['int8']['agreement']['top1']:.3f}, max |dp| {levels['int8']['agreement']['max_abs_dp']:.4f})")
        result["folds"].append(entry)
        result["summary"] = _summary(result)
        (cv_dir / CV_PRECISION).write_text(json.dumps(result, indent=2))
    return result


def training_fields(relpaths: list[str], groups: list[str], held_out_groups: list[str]) -> list[str]:
    """The fields a fold trained on: every field whose group the fold did not hold out."""
    held = set(held_out_groups)
    return [relpath for relpath, group in zip(relpaths, groups, strict=True) if group not in held]


def _figure(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _read_cv(cv_dir: Path) -> tuple[dict, list[dict]]:
    """``cv.json`` and ``held_out.csv`` of a CV run, or an ``ExportError`` that says what is wrong."""
    record_path, held_path = cv_dir / CV_RECORD, cv_dir / HELD_OUT
    for path in (record_path, held_path):
        if not path.is_file():
            raise ExportError(f"{cv_dir} is not a breakhis-cv run directory (no {path.name})")
    try:
        record = json.loads(record_path.read_text())
        with open(held_path, newline="") as handle:
            reader = csv.DictReader(handle)
            held_out, columns = list(reader), reader.fieldnames or []
    except (ValueError, csv.Error) as problem:
        raise ExportError(f"{cv_dir}: unreadable CV record ({problem})") from None
    missing = [c for c in HELD_OUT_COLUMNS if c not in columns]
    if missing:
        raise ExportError(f"{held_path} lacks the column(s) {', '.join(missing)}")
    for line, row in enumerate(held_out, start=2):
        try:
            int(row["fold"]), int(row["malignant"]), float(row["p_malignant"])
        except (TypeError, ValueError):
            raise ExportError(f"{held_path}, line {line}: fold, malignant and p_malignant must be numbers") from None
    if not _is_cv_record(record):
        raise ExportError(f"{record_path} is not a breakhis-cv record (config, and folds with their starts' figures)")
    return record, held_out


def _is_cv_record(record) -> bool:
    """The parts of ``cv.json`` this reads: config, n_images, and per fold its groups and each start's count."""
    def fold_ok(fold) -> bool:
        return (isinstance(fold, dict) and isinstance(fold.get("fold"), int) and "held_out_groups" in fold
                and isinstance(fold.get("starts"), dict)
                and all(isinstance(v, dict) and isinstance(v.get("image"), dict) and "n" in v["image"]
                        for v in fold["starts"].values()))
    return (isinstance(record, dict) and isinstance(record.get("config"), dict)
            and isinstance(record.get("folds"), list) and all(fold_ok(f) for f in record["folds"]))


def _onnx_probabilities(stage: StageSource, calibration: np.ndarray, images: np.ndarray,
                        choice: QuantizationChoice) -> dict[str, np.ndarray]:
    """Malignant probability of every image at each precision, through the files export writes."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        entry, _ = export_stage(stage, out, calibration, choice, lambda _line: None, {}, stage.name,
                                tflite=False)
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
