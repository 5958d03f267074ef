"""How the BreaKHis backbone starts: in-domain pretraining on IDC, and choosing a start by grouped CV.

No ImageNet weights can be downloaded here, so a start is either from scratch or a DenseNet121
first trained on the real IDC patches (in-domain H&E). ``pretrain_idc`` trains that backbone;
``grouped_cv`` compares starts on the BreaKHis binary stage with folds grouped by the split key
(slide id by default), every fold held out once, so a choice does not rest on one lucky split.

Scale: the IDC patches are 50x50 at about 4 um/px; a 700x460 BreaKHis field at 100X (about
0.5 um/px) area-resized to 128x128 is about 2.7 um/px. Pretraining at 64x64 (3.1 um/px) is
therefore closer in scale than 128x128 (1.6 um/px), and about four times cheaper.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from edgehisto.datasets.breakhis_fields import aspect_change, field_size
from edgehisto.datasets.tasks import BREAKHIS
from edgehisto.errors import DatasetLayoutError
from edgehisto.metrics.scores import binary_figures, grouped_folds, patient_vote

START_SCRATCH = "scratch"
CV_RECORD, HELD_OUT = "cv.json", "held_out.csv"  # a CV run's figures, and its per-field held-out outputs
HELD_OUT_COLUMNS = ("fold", "start", "relpath", "group", "malignant", "p_malignant")
FOLD_MODEL = "fold{fold}-{start}.keras"  # fold is 0-based, as in cv.json
CV_MODEL = "densenet121"  # the registered model every fold trains (the binary stage's)
# squash: the whole field resized to input_size x input_size, aspect lost (the seed's; the reference row).
# fixed-scale: the field at its true aspect resized to field_height (700:460), trained on random
# input_size crops and scored on eval_crops fixed crops whose probabilities are averaged.
FIELD_GEOMETRIES = ("squash", "fixed-scale")
MAX_MAGNIFICATION_ZOOM = 4.0  # --magnification-zoom: 1 (off) to this
_LOG = logging.getLogger(__name__)  # default progress sink; the CLI passes its own


@dataclass
class PretrainConfig:
    """DenseNet121 pretraining on real IDC patches (binary IDC-negative / IDC-positive)."""

    input_size: int = 64
    epochs: int = 4
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    verbose: int = 2


@dataclass
class CVConfig:
    """Grouped k-fold over the split key; a fixed epoch count (no held-out data steers training)."""

    folds: int = 4
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-4  # the seed's recipe
    input_size: int = 128
    split_key: str = "slide"
    class_weights: bool = False  # the seed's recipe: no class balance (benign is the scarce class)
    stain_augment: bool = False  # colour jitter in HSV plus per-channel gains while training (``stain_jitter``)
    hed_augment: bool = False  # stain jitter in H&E space while training (``hed_jitter``)
    colour_normalise: bool = False  # per-image colour normalisation declared in the spec (bundle/colour.py)
    field_geometry: str = "squash"  # one of FIELD_GEOMETRIES
    field_height: int = 147  # fixed-scale: every field resized to this height at 700:460 (147 -> 224x147)
    eval_crops: int = 3  # fixed-scale: crops per held-out field, evenly spaced across its width
    slide_balance: bool = False  # sample weights: classes weigh the same, and within a class each group
    magnification_zoom: float = 1.0  # > 1: training fields zoomed in at random by up to this factor
    seed: int = 0
    eager: bool = False  # Keras runs each step eagerly: no graph to build, slower steps (smoke runs)
    keep_models: bool = False  # write each fold's Keras model (FOLD_MODEL), for ``edgehisto cv-precision``
    verbose: int = 2

    def __post_init__(self):
        problem = cv_config_problem(self)
        if problem:
            raise ValueError(problem)


def cv_config_problem(config: CVConfig) -> str | None:
    """Why a combination of CV options cannot run, in one line, or None."""
    if config.field_geometry not in FIELD_GEOMETRIES:
        return f"field_geometry {config.field_geometry!r} is not one of {', '.join(FIELD_GEOMETRIES)}"
    if config.slide_balance and config.class_weights:
        return "slide balance already weighs the classes equally; class weights on top would weigh them twice"
    height, width = field_size(config.field_height)
    if config.field_geometry == "fixed-scale" and config.input_size > min(height, width):
        return (f"a {config.input_size}x{config.input_size} crop does not fit in a {width}x{height} field "
                f"(field height {config.field_height})")
    if not 1.0 <= config.magnification_zoom <= MAX_MAGNIFICATION_ZOOM:
        return (f"magnification zoom must be between 1 (off) and {MAX_MAGNIFICATION_ZOOM:g}, "
                f"got {config.magnification_zoom}")
    if config.eval_crops < 1:
        return f"at least one eval crop per field, got {config.eval_crops}"
    return None


def pretrain_idc(idc_dir: Path, out_dir: Path, config: PretrainConfig,
                 log: Callable[[str], None] = _LOG.info) -> dict:
    """Train DenseNet121 (the seed's head, 2 classes) on IDC patches; write ``backbone.keras``.

    Patients are split train/val (grouped); the val figures say whether the backbone learned.
    """
    import keras

    from edgehisto.datasets.idc import scan_idc
    from edgehisto.datasets.splits import patient_grouped_split
    from edgehisto.metrics.scores import classification_metrics
    from edgehisto.train.breakhis import breakhis_preprocess_spec
    from edgehisto.train.data import load_tiles, make_dataset
    from edgehisto.train.fit import fit_progress, predict_probabilities
    from edgehisto.train.models import create_model

    keras.utils.set_random_seed(config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = scan_idc(idc_dir)
    sides = patient_grouped_split(dataset.labels, dataset.patients, val_fraction=0.15, test_fraction=0.15,
                                  seed=config.seed)
    sides = np.where(sides == "test", "val", sides)  # no test side: BreaKHis is the test of this backbone
    spec = breakhis_preprocess_spec(config.input_size)
    log(f"decoding {len(dataset)} IDC patches at {config.input_size}x{config.input_size}")
    arrays = {side: load_tiles(dataset.root, [p for p, s in zip(dataset.relpaths, sides, strict=True) if s == side],
                               dataset.labels[sides == side], spec) for side in ("train", "val")}
    log(f"IDC pretraining: {len(arrays['train'].labels)} train / {len(arrays['val'].labels)} val patches "
        f"at {config.input_size}x{config.input_size}")
    data = {side: make_dataset(a, keras.utils.to_categorical(a.labels, 2), spec, batch_size=config.batch_size,
                               augment=side == "train", stain=side == "train", seed=config.seed, recipe="breakhis")
            for side, a in arrays.items()}
    model = create_model("densenet121", n_classes=2, input_size=config.input_size)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    started = time.perf_counter()
    history = model.fit(data["train"], validation_data=data["val"], epochs=config.epochs, verbose=config.verbose,
                        callbacks=[keras.callbacks.CSVLogger(str(out_dir / "pretrain_history.csv")),
                                   fit_progress(log, "backbone", config.verbose)])
    model.save(out_dir / "backbone.keras")
    probabilities = predict_probabilities(model, data["val"], "softmax")
    metrics = classification_metrics(arrays["val"].labels, probabilities.argmax(1), ["IDC-negative", "IDC-positive"])
    record = {"config": asdict(config), "seconds": round(time.perf_counter() - started, 1),
              "val_patients": sorted({str(p) for p, s in zip(dataset.patients, sides, strict=True) if s == "val"}),
              "val_metrics": metrics, "history": {k: [float(v) for v in vs] for k, vs in history.history.items()}}
    (out_dir / "pretrain.json").write_text(json.dumps(record, indent=2))
    log(f"IDC pretraining done in {record['seconds']:.0f} s: val balanced accuracy "
        f"{metrics['balanced_accuracy']:.3f} -> {out_dir / 'backbone.keras'}")
    return record


def grouped_cv(data_dir: Path, out_dir: Path, starts: dict[str, str | None], config: CVConfig,
               log: Callable[[str], None] = _LOG.info) -> dict:
    """Train the binary stage once per (fold, start); score each held-out fold; write ``cv.json``.

    ``starts``: name -> None (from scratch) or a weight file for the backbone. Results are written
    after every fold so an interrupted run keeps what it measured: ``cv.json``, and ``held_out.csv``
    with every held-out field's malignant probability. ``config.keep_models`` also saves each fold's
    model, which ``edgehisto cv-precision`` exports and scores at fp32 and int8.
    """
    import keras

    from edgehisto.datasets.breakhis import scan_breakhis, split_groups
    from edgehisto.datasets.tasks import breakhis_labels
    from edgehisto.train.breakhis import breakhis_preprocess_spec
    from edgehisto.train.data import load_tiles, make_dataset
    from edgehisto.train.fit import class_weight_map, fit_progress, group_balanced_weights
    from edgehisto.train.models import create_model

    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = scan_breakhis(data_dir)
    labels, groups = breakhis_labels(dataset), split_groups(dataset, config.split_key)
    binary = BREAKHIS.stage_labels(labels)["binary"]
    spec = breakhis_preprocess_spec(config.input_size, config.colour_normalise)
    field_spec = spec if config.field_geometry == "squash" else _fixed_scale_spec(spec, dataset, config, log)
    log(f"decoding {len(labels)} images at {field_spec.input_size[1]}x{field_spec.input_size[0]}")
    arrays = load_tiles(dataset.root, dataset.relpaths, labels, field_spec)
    if arrays.failures:  # the folds index the scanned fields: every one must load
        relpath, problem = arrays.failures[0]
        raise DatasetLayoutError(f"{len(arrays.failures)} fields did not load (first: {relpath}: {problem})")
    for stale in out_dir.glob(FOLD_MODEL.format(fold="*", start="*")):
        stale.unlink()  # an earlier run's fold models must not pass for this run's
    folds = grouped_folds(labels, groups, config.folds, config.seed)
    record = {"config": asdict(config), "starts": {k: (v and Path(v).name) for k, v in starts.items()},
              "n_images": len(labels), "n_groups": int(len(set(groups))), "folds": []}
    crop = None if config.field_geometry == "squash" else (config.input_size, config.input_size)
    held_out_rows: list[tuple] = []
    for fold, held in enumerate(folds):
        train = np.setdiff1d(np.arange(len(labels)), held)
        entry = {"fold": fold, "held_out_groups": sorted({str(g) for g in groups[held]}),
                 "held_out_subtypes": sorted({int(v) for v in labels[held]}), "starts": {}}
        balance = group_balanced_weights(binary[train], groups[train], 2) if config.slide_balance else None
        for name, weights in starts.items():
            keras.utils.set_random_seed(config.seed + fold)
            started = time.perf_counter()
            sub = _rows(arrays, train)
            data = make_dataset(sub, keras.utils.to_categorical(binary[train], 2), spec, batch_size=config.batch_size,
                                augment=True, seed=config.seed + fold, recipe="breakhis", stain=config.stain_augment,
                                hed=config.hed_augment, sample_weights=balance, random_crop=crop,
                                max_zoom=config.magnification_zoom)
            model = create_model(CV_MODEL, n_classes=2, input_size=config.input_size, weights=weights)
            model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="categorical_crossentropy",
                          run_eagerly=config.eager)
            weight = class_weight_map(binary[train], 2) if config.class_weights else None
            model.fit(data, epochs=config.epochs, verbose=config.verbose, class_weight=weight,
                      callbacks=[fit_progress(log, f"fold {fold + 1}/{len(folds)} {name}", config.verbose)])
            probabilities = held_out_probabilities(model, _rows(arrays, held), spec, config)
            if config.keep_models:
                model.save(out_dir / FOLD_MODEL.format(fold=fold, start=name))
            held_out_rows += [(fold, name, arrays.relpaths[i], str(groups[i]), int(binary[i]), round(float(p), 6))
                              for i, p in zip(held, probabilities[:, 1], strict=True)]
            images = binary_figures(binary[held], probabilities.argmax(1))
            # The vote is per group of the split key (slide id by default): a patient's tissue.
            patient_truth, patient_pred = patient_vote(binary[held], probabilities, groups[held])
            entry["starts"][name] = {"image": images, "patient": binary_figures(patient_truth, patient_pred),
                                     "slides": slide_calls(binary[held], probabilities, groups[held]),
                                     "seconds": round(time.perf_counter() - started, 1)}
            log(f"fold {fold + 1}/{len(folds)} {name}: held-out balanced accuracy {images['balanced_accuracy']:.3f} "
                f"(sens {images['sensitivity']:.3f}, spec {images['specificity']:.3f}, n={images['n']}) "
                f"in {time.perf_counter() - started:.0f} s")
            keras.backend.clear_session()
        record["folds"].append(entry)
        record["summary"] = summarize_cv(record)
        (out_dir / CV_RECORD).write_text(json.dumps(record, indent=2))
        _write_held_out(out_dir / HELD_OUT, held_out_rows)
    plot_cv(record, out_dir / "cv.png")
    return record


def _write_held_out(path: Path, rows: list[tuple]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HELD_OUT_COLUMNS)
        writer.writerows(rows)


def slide_calls(truth: np.ndarray, probabilities: np.ndarray, groups: np.ndarray) -> dict[str, dict]:
    """Per held-out group: its fields, true class, and the share of its fields called malignant (class 1)."""
    calls = probabilities.argmax(1)
    return {str(g): {"fields": int((groups == g).sum()), "malignant": bool(truth[groups == g].max()),
                     "called_malignant": round(float(calls[groups == g].mean()), 3)}
            for g in sorted(set(groups.tolist()))}


def _fixed_scale_spec(spec, dataset, config: CVConfig, log: Callable[[str], None]):
    """``spec`` resizing a stored field straight to the common field size instead of a square.

    One resize does both steps: a squashed 224x224 field resized to 224x147 is its true aspect
    restored, and a field stored at its aspect keeps it (700:456 fields move by under 1%).
    """
    size = field_size(config.field_height)
    squashed = sum(tile.squashed for tile in dataset.tiles)
    stretched = sum(aspect_change(t.width, t.height, t.squashed) > 0.02 for t in dataset.tiles if t.width)
    log(f"fixed scale: every field at its true aspect resized to {size[1]}x{size[0]} ({squashed} squashed "
        f"fields restored, {stretched} fields off 700:460 by over 2%), random {config.input_size}x"
        f"{config.input_size} crops to train on, {config.eval_crops} fixed crops averaged per held-out field")
    return replace(spec, input_size=size, notes=[
        f"Each field at its true aspect ratio, area-resized to {size[1]}x{size[0]} (squashed 224x224 fields "
        f"restored to 224x147); the model sees {config.input_size}x{config.input_size} crops of it."])


def held_out_probabilities(model, fields, spec, config: CVConfig) -> np.ndarray:
    """(N, 2) softmax probabilities per field: of the whole (squashed) field, or the mean over its fixed crops."""
    from edgehisto.bundle.crops import crop_origins, cut_crops
    from edgehisto.train.data import TileArrays, make_dataset
    from edgehisto.train.fit import predict_probabilities

    if config.field_geometry == "squash":
        views = fields.images[:, None]
    else:
        size = (config.input_size, config.input_size)
        views = cut_crops(fields.images, crop_origins(fields.images.shape[1:3], size, config.eval_crops), size)
    n, k = views.shape[:2]
    flat = TileArrays(views.reshape(n * k, *views.shape[2:]), np.repeat(fields.labels, k), [], [])
    test = make_dataset(flat, flat.labels, spec, batch_size=config.batch_size, augment=False, seed=0)
    probabilities = predict_probabilities(model, test.map(lambda x, _: x), "softmax")
    return probabilities.reshape(n, k, -1).mean(1)


def _rows(arrays, rows: np.ndarray):
    from edgehisto.train.data import TileArrays

    return TileArrays(arrays.images[rows], arrays.labels[rows], [arrays.relpaths[i] for i in rows], [])


def summarize_cv(record: dict) -> dict:
    """Per start and level (image, patient): mean and sample standard deviation over folds."""
    summary = {}
    for name in record["starts"]:
        summary[name] = {}
        for level in ("image", "patient"):
            per_fold = [f["starts"][name][level] for f in record["folds"] if name in f["starts"]]
            summary[name][level] = {
                key: _spread([p[key] for p in per_fold])
                for key in ("accuracy", "balanced_accuracy", "sensitivity", "specificity")}
            summary[name][level]["folds"] = len(per_fold)
    return summary


def _spread(values: list) -> dict:
    """Mean and sample sd over the folds that could measure it (None: a class absent from the fold)."""
    measured = [v for v in values if v is not None]
    return {"mean": float(np.mean(measured)) if measured else None,
            "sd": float(np.std(measured, ddof=1)) if len(measured) > 1 else 0.0, "measured_folds": len(measured)}


def plot_cv(record: dict, path: Path) -> None:
    """Held-out balanced accuracy per fold and start (image level), with the means as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(record["starts"])
    folds = record["folds"]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        values = [f["starts"][name]["image"]["balanced_accuracy"] for f in folds]
        bars = ax.bar(np.arange(len(folds)) + i * width, values, width, label=name)
        ax.axhline(np.mean(values), color=bars.patches[0].get_facecolor(), linestyle="--", linewidth=1)
    ax.axhline(0.5, color="grey", linewidth=0.8)
    ax.set_xticks(np.arange(len(folds)) + width * (len(names) - 1) / 2, [f"fold {f['fold'] + 1}" for f in folds])
    ax.set_ylim(0, 1)
    ax.set_ylabel("held-out balanced accuracy (benign/malignant)")
    ax.set_title(f"Grouped {len(folds)}-fold CV by {record['config']['split_key']} "
                 f"({record['n_groups']} groups, {record['n_images']} images)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
