"""The shared fit -> save -> evaluate loop behind every ``train`` command."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from edgehisto.runtime.preprocess import PreprocessSpec


def class_weight_map(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    """Balanced class weights (scikit-learn's formula); absent classes get weight 1."""
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    mapping = {c: 1.0 for c in range(n_classes)}
    mapping.update({int(c): float(w) for c, w in zip(present, weights, strict=True)})
    return mapping


def predict_probabilities(model, dataset) -> np.ndarray:
    """(N, K) class probabilities; a single-sigmoid output becomes [1 - p, p]."""
    raw = np.asarray(model.predict(dataset, verbose=0), np.float64)
    if raw.ndim == 2 and raw.shape[1] == 1:
        raw = np.concatenate([1.0 - raw, raw], axis=1)
    return raw


def fit_and_save(
    model,
    root: Path,
    relpaths: Sequence[str],
    labels: np.ndarray,
    sides: np.ndarray,
    spec: PreprocessSpec,
    config,
    run_dir: Path,
    run_info: dict,
    log: Callable[[str], None],
) -> dict:
    """Load tiles, fit with the seed's callbacks, then write model, history, curves and metrics."""
    import keras

    from edgehisto.train.data import load_tiles, make_dataset
    from edgehisto.train.evaluation import classification_metrics, plot_history, write_metrics
    from edgehisto.train.provenance import provenance

    class_names = run_info["class_names"]
    arrays = {}
    for side in ("train", "val", "test"):
        mask = sides == side
        chosen = [p for p, m in zip(relpaths, mask, strict=True) if m]
        arrays[side] = load_tiles(root, chosen, labels[mask], spec)
        log(f"{side}: {len(arrays[side].labels)} tiles loaded, {len(arrays[side].failures)} unreadable")

    def targets(side):
        y = arrays[side].labels
        return y.astype(np.float32)[:, None] if run_info["output"] == "sigmoid" else keras.utils.to_categorical(y, len(class_names))

    train_ds = make_dataset(arrays["train"], targets("train"), spec, batch_size=config.batch_size, augment=True,
                            seed=config.seed, stain=config.stain_augment)
    val_ds = make_dataset(arrays["val"], targets("val"), spec, batch_size=config.batch_size, augment=False, seed=config.seed)
    weights = class_weight_map(arrays["train"].labels, len(class_names)) if config.class_weights else None
    callbacks = [
        keras.callbacks.ReduceLROnPlateau("val_loss", factor=0.5, patience=3, min_lr=1e-6, verbose=1),
        keras.callbacks.EarlyStopping("val_loss", patience=config.patience, restore_best_weights=True, verbose=1),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv")),
    ]
    history = model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, class_weight=weights,
                        callbacks=callbacks, verbose=config.verbose, shuffle=False)
    model.save(run_dir / "model.keras")
    clean_history = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    (run_dir / "history.json").write_text(json.dumps(clean_history, indent=2))
    plot_history(clean_history, run_dir / "curves.png")

    test_ds = make_dataset(arrays["test"], targets("test"), spec, batch_size=config.batch_size, augment=False, seed=config.seed)
    probabilities = predict_probabilities(model, test_ds)
    metrics = classification_metrics(arrays["test"].labels, probabilities.argmax(axis=1), class_names)
    write_metrics(metrics, run_dir, "test_metrics", f"{run_info['task']} test split")
    run_info = dict(run_info, class_weight=weights, n_params=int(model.count_params()),
                    epochs_run=len(clean_history.get("loss", [])),
                    load_failures={s: a.failures for s, a in arrays.items()},
                    provenance=provenance(run_info["config"]))
    (run_dir / "run.json").write_text(json.dumps(run_info, indent=2))
    log(f"test accuracy {metrics['accuracy']:.4f}, balanced {metrics['balanced_accuracy']:.4f} -> {run_dir}")
    return metrics

