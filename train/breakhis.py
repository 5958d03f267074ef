"""Training the BreaKHis DenseNet121 hierarchy (three models) or its multitask variant.

``hierarchy``: a binary benign/malignant model routes a tile to a 4-class benign-subtype model
(A, F, PT, TA) or a 4-class malignant-subtype model (DC, LC, MC, PC), as in the seed.
``multitask``: one shared backbone with three heads trained jointly; the subtype losses are
masked by the true binary label, so at inference the backbone runs once per tile.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgehisto.bundle.colour import IDC_TARGET_MEAN, IDC_TARGET_STD
from edgehisto.bundle.preprocess import PreprocessSpec
from edgehisto.datasets.breakhis import DEFAULT_SPLIT_KEY
from edgehisto.datasets.run_info import RunInfo, RunStage
from edgehisto.datasets.tasks import BREAKHIS, END_TO_END_CLASSES, breakhis_labels, routed_labels
from edgehisto.train.fit import FitConfig
from edgehisto.train.models import MODELS, arch_models, model_spec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SUBTYPE_STAGES = ("benign_subtype", "malignant_subtype")
ARCH_MODELS = arch_models(BREAKHIS.name)  # "hierarchy" -> "densenet121", "multitask" -> "densenet121_multitask"
_LOG = logging.getLogger(__name__)  # default progress sink; the CLI passes its own


@dataclass
class BreakhisConfig(FitConfig):
    """The seed's recipe by default; every field but ``verbose`` is a ``train breakhis`` option.

    ``split="patient"`` groups by ``split_key`` and stratifies by subtype.
    """

    input_size: int = MODELS[ARCH_MODELS["hierarchy"]].default_input_size
    epochs: int = 50
    learning_rate: float = 1e-4
    class_weights: bool = True  # subtype stages (the seed's subtype models collapsed onto F and DC)
    balance_binary: bool = False  # class weights on the binary stage too (benign is the scarce class)
    arch: str = "hierarchy"  # a key of ARCH_MODELS: "hierarchy" (three models) or "multitask"
    split_key: str = DEFAULT_SPLIT_KEY
    magnifications: tuple[int, ...] | None = None
    weights: str | None = None  # None: from scratch; "imagenet" or a path: a local weight file
    fine_tune_epochs: int = 0  # with weights: train the head first, then the last dense block
    colour_normalise: bool = False  # declare per-image colour normalisation (bundle/colour.py) in the spec


def breakhis_preprocess_spec(input_size: int, colour_normalise: bool = False) -> PreprocessSpec:
    """DenseNet ("torch") preprocessing: RGB, area-resize the whole image, optionally normalise each
    channel's mean and std to the IDC targets (``bundle/colour.py``), /255, ImageNet mean/std."""
    notes = ["The whole 700x460 image is resized to a square (aspect ratio not kept), as in the seed; "
             "an area average because this is a strong downsampling (bit-exact on every CPU)."]
    colour = None
    if colour_normalise:
        colour = {"method": "channel_stats_exact", "mean": list(IDC_TARGET_MEAN), "std": list(IDC_TARGET_STD)}
        notes.append("Each channel's mean and std are moved to the average of real IDC patches (Reinhard's "
                     "transfer per RGB channel, in integers): slide-to-slide stain casts are removed.")
    return PreprocessSpec(
        input_size=(input_size, input_size), scale=1.0 / 255.0, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        resize_method="area_exact", notes=notes, colour=colour,
    )


def _portable_config(config: BreakhisConfig) -> dict:
    """The config as run.json records it: a start's weight file by name and sha256, not by the machine
    path it was read from (the record travels into the bundle's manifest)."""
    record = asdict(config)
    if config.weights not in (None, "imagenet"):
        record["weights"] = Path(config.weights).name
        record["weights_sha256"] = hashlib.sha256(Path(config.weights).read_bytes()).hexdigest()
    return record


def _compile(model, config: BreakhisConfig, learning_rate: float | None = None) -> None:
    import keras

    losses = {name: "categorical_crossentropy" for name in model.output_names} if len(model.outputs) > 1 \
        else "categorical_crossentropy"
    metrics = {name: ["accuracy"] for name in model.output_names} if len(model.outputs) > 1 else ["accuracy"]
    model.compile(optimizer=keras.optimizers.Adam(learning_rate or config.learning_rate), loss=losses,
                  metrics=metrics, run_eagerly=config.eager)


def _onehot(labels: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((len(labels), n), np.float32)
    valid = labels >= 0
    out[np.flatnonzero(valid), labels[valid]] = 1.0
    return out


def _subset(arrays, rows: np.ndarray):
    from edgehisto.train.data import TileArrays

    return TileArrays(arrays.images[rows], arrays.labels[rows], [arrays.relpaths[i] for i in rows], [])


def _train_hierarchy(arrays: dict, spec, config: BreakhisConfig, run_dir: Path, log) -> tuple[dict, dict]:
    """Fit the three stage models; returns (stage -> model, stage -> class weights)."""
    from edgehisto.train.data import make_dataset
    from edgehisto.train.fit import class_weight_map
    from edgehisto.train.models import create_model

    models, weights_used = {}, {}
    for stage, classes in BREAKHIS.stages.items():
        data = {}
        for side in ("train", "val"):
            y = BREAKHIS.stage_labels(arrays[side].labels)[stage]
            rows = np.flatnonzero(y >= 0)
            data[side] = make_dataset(_subset(arrays[side], rows), _onehot(y[rows], len(classes)), spec,
                                      batch_size=config.batch_size, augment=side == "train", seed=config.seed,
                                      stain=side == "train" and config.stain_augment, recipe="breakhis")
        train_y = BREAKHIS.stage_labels(arrays["train"].labels)[stage]
        weights = class_weight_map(train_y[train_y >= 0], len(classes)) \
            if _weighted(config, stage) else None
        log(f"[{stage}] {int((train_y >= 0).sum())} training tiles, class weights {weights}")
        model = create_model(ARCH_MODELS["hierarchy"], n_classes=len(classes), input_size=config.input_size,
                             weights=config.weights)
        _fit_with_optional_fine_tune(model, data, config, run_dir, stage, weights, log)
        models[stage], weights_used[stage] = model, weights
    return models, weights_used


def _weighted(config: BreakhisConfig, stage: str) -> bool:
    """Whether a stage trains with class weights (subtypes: ``class_weights``; binary: ``balance_binary``)."""
    return config.balance_binary if stage not in SUBTYPE_STAGES else config.class_weights


def _fit_with_optional_fine_tune(model, data, config, run_dir, stem, weights, log) -> None:
    """From scratch: train everything. With pretrained weights and fine-tune epochs: head first,
    then unfreeze the last dense block (``conv5_*``) at a tenth of the learning rate."""
    from edgehisto.train.fit import fit_model

    pretrained = config.weights is not None and config.fine_tune_epochs > 0
    if pretrained:
        for layer in model.layers:
            layer.trainable = not (layer.name.startswith(("conv", "pool", "bn", "relu", "zero_padding")))
    _compile(model, config)
    fit_model(model, data["train"], data["val"], config, run_dir, stem, weights, log=log)
    if pretrained:
        for layer in model.layers:
            layer.trainable = layer.trainable or layer.name.startswith(("conv5", "bn", "relu"))
        _compile(model, config, config.learning_rate / 10)
        tuned = BreakhisConfig(**{**asdict(config), "epochs": config.fine_tune_epochs})
        fit_model(model, data["train"], data["val"], tuned, run_dir, f"{stem}_finetune", weights, log=log)


def _train_multitask(arrays: dict, spec, config: BreakhisConfig, run_dir: Path, log):
    """Fit one backbone with three heads; subtype losses masked by the true binary label."""
    from edgehisto.train.data import make_dataset
    from edgehisto.train.fit import class_weight_map
    from edgehisto.train.models import create_model

    model = create_model(ARCH_MODELS["multitask"], input_size=config.input_size, weights=config.weights)
    train_labels = BREAKHIS.stage_labels(arrays["train"].labels)
    class_weights = {s: class_weight_map(train_labels[s][train_labels[s] >= 0], len(c))
                     if _weighted(config, s) else None
                     for s, c in BREAKHIS.stages.items()}
    data = {}
    for side in ("train", "val"):
        labels = BREAKHIS.stage_labels(arrays[side].labels)
        targets = {f"{s}_probabilities": _onehot(labels[s], len(c)) for s, c in BREAKHIS.stages.items()}
        weights = {}
        for s in BREAKHIS.stages:
            w = np.where(labels[s] >= 0, 1.0, 0.0).astype(np.float32)
            if class_weights[s]:
                w *= np.array([class_weights[s].get(int(v), 0.0) for v in labels[s]], np.float32)
            weights[f"{s}_probabilities"] = w
        data[side] = make_dataset(arrays[side], targets, spec, batch_size=config.batch_size,
                                  augment=side == "train", seed=config.seed, recipe="breakhis",
                                  stain=side == "train" and config.stain_augment, sample_weights=weights)
    log(f"[multitask] {len(arrays['train'].labels)} training tiles, subtype class weights {class_weights}")
    _fit_with_optional_fine_tune(model, data, config, run_dir, "multitask", None, log)
    return model, class_weights


def _stage_probabilities(models: dict, x_dataset, arch: str) -> dict[str, np.ndarray]:
    if arch == "multitask":
        raw = models["multitask"].predict(x_dataset, verbose=0)
        return {s: np.asarray(raw[f"{s}_probabilities"]) for s in BREAKHIS.stages}
    return {s: np.asarray(m.predict(x_dataset, verbose=0)) for s, m in models.items()}


def evaluate_hierarchy(models: dict, arrays, spec, config: BreakhisConfig, run_dir: Path) -> dict:
    """Test-split metrics per stage (on tiles the stage applies to) and end-to-end 8-class."""
    from edgehisto.metrics.figures import write_metrics
    from edgehisto.metrics.scores import classification_metrics
    from edgehisto.train.data import make_dataset

    test = arrays["test"]
    dataset = make_dataset(test, test.labels, spec, batch_size=config.batch_size, augment=False, seed=0)
    probabilities = _stage_probabilities(models, dataset.map(lambda x, _: x), config.arch)
    truth = BREAKHIS.stage_labels(test.labels)
    results = {}
    for stage, classes in BREAKHIS.stages.items():
        rows = truth[stage] >= 0
        metrics = classification_metrics(truth[stage][rows], probabilities[stage][rows].argmax(1), classes)
        write_metrics(metrics, run_dir, f"test_{stage}", f"{stage} (test, true routing)")
        results[stage] = metrics
    routed = routed_labels(BREAKHIS, {s: p.argmax(1) for s, p in probabilities.items()})
    results["end_to_end"] = classification_metrics(test.labels, routed, END_TO_END_CLASSES["breakhis"])
    write_metrics(results["end_to_end"], run_dir, "test_end_to_end", "8-class end to end (test, routed)")
    return results


def train_breakhis(data_dir: Path, run_dir: Path, config: BreakhisConfig,
                   log: Callable[[str], None] = _LOG.info) -> dict:
    """Train the hierarchy or the multitask model on a BreaKHis-layout directory; fill ``run_dir``.

    ``log`` receives one progress line at a time (default: this module's logger).
    """
    import keras

    from edgehisto.bundle.provenance import provenance
    from edgehisto.datasets.breakhis import scan_breakhis, split_groups
    from edgehisto.datasets.splits import summarize_split, write_split
    from edgehisto.train.fit import load_sides, split_sides

    if config.arch not in ARCH_MODELS:
        raise ValueError(f"unknown arch {config.arch!r}; choose one of: {', '.join(ARCH_MODELS)}")
    keras.utils.set_random_seed(config.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    mags = set(config.magnifications) if config.magnifications else None
    dataset = scan_breakhis(data_dir, magnifications=mags)
    labels, groups = breakhis_labels(dataset), split_groups(dataset, config.split_key)
    log(f"found {len(dataset)} images, {len(dataset.problems)} problem files")
    sides = split_sides(labels, groups, config)
    key = config.split_key if config.split == "patient" else "image"
    summary = summarize_split(sides, labels, groups, key=key, method=config.split, seed=config.seed)
    write_split(run_dir, dataset.relpaths, labels, groups, sides, summary)
    spec = breakhis_preprocess_spec(config.input_size, config.colour_normalise)
    arrays = load_sides(dataset.root, dataset.relpaths, labels, sides, spec, log)
    if config.arch == "multitask":
        model, weights = _train_multitask(arrays, spec, config, run_dir, log)
        models = {"multitask": model}
    else:
        models, weights = _train_hierarchy(arrays, spec, config, run_dir, log)
    metrics = evaluate_hierarchy(models, arrays, spec, config, run_dir)
    RunInfo(
        task="breakhis", arch=config.arch, preprocess=spec, config=_portable_config(config),
        data_dir=Path(data_dir).resolve(), routing=BREAKHIS.routing,
        stages=[_stage_entry(stage, classes, config.arch) for stage, classes in BREAKHIS.stages.items()],
        class_weight=weights, n_params={k: int(m.count_params()) for k, m in models.items()},
        provenance=provenance(_portable_config(config)),
        problems=[{"path": str(p.path), "reason": p.reason} for p in dataset.problems],
    ).write(run_dir)
    e2e = metrics["end_to_end"]
    log(f"end-to-end 8-class test accuracy {e2e['accuracy']:.4f} (balanced {e2e['balanced_accuracy']:.4f})")
    return metrics


def _stage_entry(stage: str, classes: tuple[str, ...], arch: str) -> RunStage:
    multitask = arch == "multitask"
    prefix = f"{stage}_" if multitask else ""
    registered = model_spec(ARCH_MODELS[arch])
    return RunStage(stage, "multitask.keras" if multitask else f"{stage}.keras", list(classes), registered.output,
                    registered.gradcam_layer, f"{prefix}logits", f"{prefix}probabilities")
