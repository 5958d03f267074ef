"""Training the IDC CNN: scan -> split -> tiles -> tf.data -> fit -> evaluate -> run directory.

Run directory contents (the contract ``export`` reads):
``model.keras``, ``run.json`` (task, classes, preprocessing spec, Grad-CAM layer, config,
provenance), ``history.csv``/``history.json``, ``curves.png``, ``split.csv``/``split.json``,
``test_metrics.json`` with ``test_metrics_confusion.{csv,png}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgehisto.bundle.preprocess import PreprocessSpec

IDC_CLASSES = ("IDC-negative", "IDC-positive")
IDC_NATIVE_SIZE = 50
MODEL_NAME = "idc_cnn"


@dataclass
class TrainConfig:
    """The seed's recipe by default; every field is a ``train idc`` option."""

    input_size: int = 128
    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    split: str = "patient"  # "patient" (grouped, default) or "image" (the seed's)
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    class_weights: bool = False
    stain_augment: bool = False
    patience: int = 5
    seed: int = 0
    verbose: int = 2


def idc_preprocess_spec(input_size: int) -> PreprocessSpec:
    """Decode RGB, pad edge patches to 50x50 with white, resize to ``input_size``, scale 1/255."""
    return PreprocessSpec(
        input_size=(input_size, input_size),
        scale=1.0 / 255.0,
        pad_to=(IDC_NATIVE_SIZE, IDC_NATIVE_SIZE),
        notes=["IDC patches smaller than 50x50 are slide-edge patches: padded bottom/right with white."],
    )


def split_sides(labels: np.ndarray, groups: np.ndarray, config: TrainConfig) -> np.ndarray:
    """Patient-grouped stratified split (default) or the seed's image-level stratified split."""
    from edgehisto.data.splits import image_level_split, patient_grouped_split

    fractions = {"val_fraction": config.val_fraction, "test_fraction": config.test_fraction}
    if config.split == "image":
        return image_level_split(labels, seed=config.seed, **fractions)
    return patient_grouped_split(labels, groups, seed=config.seed, **fractions)


def train_idc(
    data_dir: Path, run_dir: Path, config: TrainConfig, log: Callable[[str], None] = print
) -> dict:
    """Train the IDC CNN on an IDC-layout directory and fill ``run_dir``; returns test metrics."""
    import keras

    from edgehisto.data.datasets.idc import scan_idc
    from edgehisto.data.splits import summarize_split, write_split
    from edgehisto.train.fit import fit_and_save

    keras.utils.set_random_seed(config.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    dataset = scan_idc(data_dir)
    log(f"found {len(dataset)} tiles ({dataset.class_counts}), {len(dataset.problems)} problem files")
    labels, groups = dataset.labels, dataset.patients
    sides = split_sides(labels, groups, config)
    key = "patient" if config.split == "patient" else "image"
    summary = summarize_split(sides, labels, groups, key=key, method=config.split, seed=config.seed)
    write_split(run_dir, dataset.relpaths, labels, groups, sides, summary)
    log(f"split ({config.split}): " + json.dumps(summary.class_counts))

    spec = idc_preprocess_spec(config.input_size)
    model = _compile(config)
    run_info = {
        "task": "idc", "model": MODEL_NAME, "output": "sigmoid", "class_names": list(IDC_CLASSES),
        "gradcam_layer": "separable_conv2d", "preprocess": spec.to_dict(),
        "config": asdict(config), "data_dir": str(Path(data_dir).resolve()),
        "problems": [asdict(p) | {"path": str(p.path)} for p in dataset.problems],
    }
    return fit_and_save(
        model, dataset.root, dataset.relpaths, labels, sides, spec, config, run_dir, run_info, log
    )


def _compile(config: TrainConfig):
    import keras

    from edgehisto.train.models import create_model

    model = create_model(MODEL_NAME, input_size=config.input_size)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return model
