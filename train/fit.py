"""The shared pieces behind every ``train`` command: tiles per split side, fit, save, evaluate."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgehisto.bundle.outputs import class_probabilities
from edgehisto.bundle.preprocess import PreprocessSpec
from edgehisto.datasets.run_info import RunInfo
from edgehisto.train.models import DEFAULT_INPUT_SIZE

SPLIT_METHODS = ("patient", "image")


@dataclass
class FitConfig:
    """The fields every ``train`` command shares; each task's config adds its own and may change a default.

    Every field but ``verbose`` is an option of the ``train`` commands, whose defaults are read here.
    """

    input_size: int = DEFAULT_INPUT_SIZE
    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    split: str = "patient"  # one of SPLIT_METHODS: "patient" (grouped, stratified) or "image" (the seed's)
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    class_weights: bool = False
    stain_augment: bool = False
    patience: int = 5
    seed: int = 0
    eager: bool = False  # Keras runs each step eagerly: no graph to build, slower steps (smoke runs)
    verbose: int = 2  # Keras's: 1 draws a per-step bar (the CLI's choice on a terminal), 2 a line per epoch


# Without Keras's per-step bar (verbose 2), a line at most this often inside an epoch: an IDC epoch
# on the real data takes about 4 minutes on 2 cores, a log should not stay silent that long.
STEP_LINE_SECONDS = 60.0


def _no_log(_line: str) -> None:
    """The default progress sink of ``fit_model``: say nothing."""


def fit_progress(log: Callable[[str], None], name: str, verbose: int, every_seconds: float = STEP_LINE_SECONDS):
    """A Keras callback: a line as fitting starts, and with ``verbose`` 2 a line every ``every_seconds``.

    The first line comes before the first step, which also traces and compiles the graph (about a
    minute for DenseNet121 on 2 cores) and so would otherwise be silent.
    """
    import time

    import keras

    class FitProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.epoch, self.last = 0, time.monotonic()
            steps = self.params.get("steps")
            eager = getattr(self.model, "run_eagerly", False)
            log(f"fitting {name}: {self.params.get('epochs')} epoch(s)" + (f" of {steps} steps" if steps else "")
                + ("; eagerly, building no graph" if eager else "; the first step also builds the graph"))

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            now = time.monotonic()
            if verbose != 2 or now - self.last < every_seconds:
                return
            self.last = now
            loss = (logs or {}).get("loss")
            log(f"{name}: epoch {self.epoch + 1}/{self.params.get('epochs')}, step {batch + 1}/"
                f"{self.params.get('steps') or '?'}" + ("" if loss is None else f", loss {float(loss):.4f}"))

        def on_epoch_end(self, epoch, logs=None):
            self.last = time.monotonic()  # Keras's own epoch line just went out

    return FitProgress()


def split_sides(labels: np.ndarray, groups: np.ndarray, config: FitConfig) -> np.ndarray:
    """Patient-grouped stratified split (default) or the seed's image-level stratified split."""
    from edgehisto.datasets.splits import image_level_split, patient_grouped_split

    fractions = {"val_fraction": config.val_fraction, "test_fraction": config.test_fraction}
    if config.split == "image":
        return image_level_split(labels, seed=config.seed, **fractions)
    return patient_grouped_split(labels, groups, seed=config.seed, **fractions)


def class_weight_map(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    """Balanced class weights (scikit-learn's formula); absent classes get weight 1."""
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    mapping = {c: 1.0 for c in range(n_classes)}
    mapping.update({int(c): float(w) for c, w in zip(present, weights, strict=True)})
    return mapping


def group_balanced_weights(labels: np.ndarray, groups: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-sample weights: every class weighs the same in total and, within a class, every group too.

    ``class_weight_map`` twice: over the classes, then over the groups (slides) of each class. A sample
    of class c in group g weighs N / (C * G_c * n_g): each class sums to N / C, each of its G_c groups
    to N / (C * G_c), and all to N, so the loss keeps its scale.
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    per_class = class_weight_map(labels, n_classes)
    weights = np.array([per_class[int(c)] for c in labels], np.float64)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        _, group = np.unique(groups[rows], return_inverse=True)
        per_group = class_weight_map(group, int(group.max()) + 1)
        weights[rows] *= [per_group[int(g)] for g in group]
    return weights.astype(np.float32)


def predict_probabilities(model, dataset, output: str) -> np.ndarray:
    """(N, K) float64 class probabilities of a model with ``output`` kind ("sigmoid"/"softmax")."""
    return class_probabilities(np.asarray(model.predict(dataset, verbose=0), np.float64), output)


def load_sides(root: Path, relpaths: Sequence[str], labels: np.ndarray, sides: np.ndarray,
               spec: PreprocessSpec, log: Callable[[str], None]) -> dict:
    """Resized uint8 tiles for each split side (decoded once, kept in memory)."""
    from edgehisto.train.data import load_tiles

    arrays = {}
    log(f"decoding {len(relpaths)} tiles at {spec.input_size[0]}x{spec.input_size[1]}")
    for side in ("train", "val", "test"):
        mask = sides == side
        chosen = [p for p, m in zip(relpaths, mask, strict=True) if m]
        arrays[side] = load_tiles(root, chosen, labels[mask], spec)
        log(f"{side}: {len(arrays[side].labels)} tiles loaded, {len(arrays[side].failures)} unreadable")
    return arrays


def seed_callbacks(config, history_csv: Path) -> list:
    """ReduceLROnPlateau + EarlyStopping (best weights restored) on val_loss, and a CSV log."""
    import keras

    return [
        keras.callbacks.ReduceLROnPlateau("val_loss", factor=0.5, patience=3, min_lr=1e-6, verbose=1),
        keras.callbacks.EarlyStopping("val_loss", patience=config.patience, restore_best_weights=True, verbose=1),
        keras.callbacks.CSVLogger(str(history_csv)),
    ]


def fit_model(model, train_ds, val_ds, config, run_dir: Path, stem: str, class_weight=None,
              steps_per_epoch: int | None = None, log: Callable[[str], None] = _no_log) -> dict:
    """Fit with the seed's callbacks, save ``<stem>.keras``, history JSON/CSV and curves PNG.

    ``log`` gets a line as fitting starts and, without Keras's per-step bar, one every minute or so.
    """
    from edgehisto.metrics.figures import plot_history

    callbacks = [*seed_callbacks(config, run_dir / f"{stem}_history.csv"), fit_progress(log, stem, config.verbose)]
    history = model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, class_weight=class_weight,
                        callbacks=callbacks,
                        verbose=config.verbose, shuffle=False, steps_per_epoch=steps_per_epoch)
    model.save(run_dir / f"{stem}.keras")
    clean = {k: [float(v) for v in values] for k, values in history.history.items()}
    (run_dir / f"{stem}_history.json").write_text(json.dumps(clean, indent=2))
    plot_history(clean, run_dir / f"{stem}_curves.png")
    return clean


def fit_and_save(model, root: Path, relpaths: Sequence[str], labels: np.ndarray, sides: np.ndarray,
                 spec: PreprocessSpec, config, run_dir: Path, run_info: RunInfo,
                 log: Callable[[str], None]) -> dict:
    """Single-model training (IDC): fit, then write model, history, curves, metrics and run.json."""
    import keras

    from edgehisto.bundle.provenance import provenance
    from edgehisto.metrics.figures import write_metrics
    from edgehisto.metrics.scores import classification_metrics
    from edgehisto.train.data import make_dataset

    class_names = run_info.class_names
    arrays = load_sides(root, relpaths, labels, sides, spec, log)

    def dataset(side, augment):
        y = arrays[side].labels
        sigmoid = run_info.output == "sigmoid"
        y = y.astype(np.float32)[:, None] if sigmoid else keras.utils.to_categorical(y, len(class_names))
        return make_dataset(arrays[side], y, spec, batch_size=config.batch_size, augment=augment,
                            seed=config.seed, stain=augment and config.stain_augment)

    weights = class_weight_map(arrays["train"].labels, len(class_names)) if config.class_weights else None
    history = fit_model(model, dataset("train", True), dataset("val", False), config, run_dir, "model", weights,
                        log=log)
    probabilities = predict_probabilities(model, dataset("test", False), run_info.output)
    metrics = classification_metrics(arrays["test"].labels, probabilities.argmax(axis=1), class_names)
    write_metrics(metrics, run_dir, "test_metrics", f"{run_info.task} test split")
    replace(run_info, class_weight=weights, n_params=int(model.count_params()),
            epochs_run=len(history.get("loss", [])), load_failures={s: a.failures for s, a in arrays.items()},
            provenance=provenance(run_info.config)).write(run_dir)
    log(f"test accuracy {metrics['accuracy']:.4f}, balanced {metrics['balanced_accuracy']:.4f} -> {run_dir}")
    return metrics
