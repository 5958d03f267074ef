"""Training an IDC model: scan -> split -> tiles -> tf.data -> fit -> evaluate -> run directory.

Run directory contents (the contract ``export`` reads):
``model.keras``, ``run.json`` (task, classes, preprocessing spec, Grad-CAM layer, config,
provenance), ``history.csv``/``history.json``, ``curves.png``, ``split.csv``/``split.json``,
``test_metrics.json`` with ``test_metrics_confusion.{csv,png}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from edgehisto.bundle.preprocess import PreprocessSpec
from edgehisto.datasets.run_info import RunInfo
from edgehisto.datasets.tasks import IDC
from edgehisto.train.fit import FitConfig, split_sides
from edgehisto.train.models import MODELS, model_spec

DEFAULT_MODEL = "idc_cnn"
_LOG = logging.getLogger(__name__)  # default progress sink; the CLI passes its own


@dataclass
class TrainConfig(FitConfig):
    """The seed's recipe by default; every field but ``verbose`` is a ``train idc`` option."""

    input_size: int = MODELS[DEFAULT_MODEL].default_input_size
    model: str = DEFAULT_MODEL  # a registered IDC model (``train/models.py``)


def idc_preprocess_spec(input_size: int, tile_size: int = MODELS[DEFAULT_MODEL].native_size) -> PreprocessSpec:
    """Decode RGB, pad edge patches to ``tile_size`` square with white, resize to ``input_size``, scale 1/255."""
    return PreprocessSpec(
        input_size=(input_size, input_size),
        scale=1.0 / 255.0,
        pad_to=(tile_size, tile_size),
        notes=[f"IDC patches smaller than {tile_size}x{tile_size} are slide-edge patches: "
               "padded bottom/right with white."],
    )


def train_idc(
    data_dir: Path, run_dir: Path, config: TrainConfig, log: Callable[[str], None] = _LOG.info
) -> dict:
    """Train an IDC model on an IDC-layout directory and fill ``run_dir``; returns test metrics.

    ``log`` receives one progress line at a time (default: this module's logger).
    """
    import keras

    from edgehisto.datasets.idc import scan_idc
    from edgehisto.datasets.splits import summarize_split, write_split
    from edgehisto.train.fit import fit_and_save

    registered = model_spec(config.model, IDC.name)
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

    spec = idc_preprocess_spec(config.input_size, registered.native_size)
    model = _compile(config, registered.output)
    run_info = RunInfo(
        task=IDC.name, model=config.model, output=registered.output,
        class_names=list(IDC.stages[IDC.name]), gradcam_layer=registered.gradcam_layer,
        preprocess=spec, config=asdict(config), data_dir=Path(data_dir).resolve(),
        problems=[asdict(p) | {"path": str(p.path)} for p in dataset.problems],
    )
    return fit_and_save(
        model, dataset.root, dataset.relpaths, labels, sides, spec, config, run_dir, run_info, log
    )


def _compile(config: TrainConfig, output: str):
    import keras

    from edgehisto.train.models import create_model

    model = create_model(config.model, input_size=config.input_size)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="binary_crossentropy" if output == "sigmoid" else "categorical_crossentropy",
        metrics=["accuracy"],
        run_eagerly=config.eager,
    )
    return model
