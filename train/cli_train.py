"""``edgehisto train idc|breakhis DATA_DIR --out RUN_DIR``: train a model and fill a run directory.

Option defaults are read from the config dataclasses and choices from the model registry, so
neither is written twice.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import get_args

import click

from edgehisto.datasets.breakhis import MAGNIFICATIONS, SplitKey
from edgehisto.train.breakhis import ARCH_MODELS, BreakhisConfig
from edgehisto.train.fit import SPLIT_METHODS, FitConfig
from edgehisto.train.idc import DEFAULT_MODEL, TrainConfig
from edgehisto.train.models import MODELS, model_names
from edgehisto.train.starts import (
    FIELD_GEOMETRIES,
    MAX_MAGNIFICATION_ZOOM,
    START_SCRATCH,
    CVConfig,
    PretrainConfig,
)


def _progress(line: str) -> None:
    click.echo(line, err=True)


def _keras_verbose() -> int:
    """Keras's per-step bar on a terminal; off one (a log file, a pipe) a line per epoch, so logs stay short.

    Keras draws on stdout, so stdout decides. Off a terminal the library adds a line about every minute.
    """
    return 1 if sys.stdout.isatty() else 2


def _starting(what: str) -> None:
    """Say what starts before TensorFlow's import, the first few silent seconds."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Without the [train] extra, the one-line error that names it (cli.main) is all a user sees.
    if importlib.util.find_spec("keras") is None:
        raise ModuleNotFoundError("No module named 'keras'", name="keras")
    click.echo(f"{what} (loading TensorFlow)", err=True)


EAGER_HELP = ("Run each Keras step eagerly, building no graph: a DenseNet121 starts about 40 s sooner, and every "
              "step is slower. For smoke runs of a step or two.")


def defaults(config: type) -> dict:
    """Field name -> default of a config dataclass."""
    return {f.name: f.default for f in fields(config)}


def config_option(config: type, name: str, *declarations: str, **kwargs):
    """A ``click.option`` for the config field ``name`` with the field's default."""
    return click.option(*declarations, name, default=defaults(config)[name], show_default=True, **kwargs)


def train_options(config: type[FitConfig], out_help: str, **help_texts: str):
    """DATA_DIR, --out and the options every ``train`` command takes, with ``config``'s defaults.

    ``help_texts`` gives a command's own help for a field (by field name).
    """
    def option(name: str, *declarations: str, **kwargs):
        return config_option(config, name, *declarations, help=help_texts.get(name), **kwargs)

    decorators = [
        click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path)),
        click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
                     help=out_help),
        option("input_size", "--input-size", type=click.IntRange(32, 512)),
        option("epochs", "--epochs", type=click.IntRange(min=1)),
        option("batch_size", "--batch-size", type=click.IntRange(min=1)),
        option("learning_rate", "--learning-rate", type=click.FloatRange(min=0, min_open=True)),
        option("split", "--split", type=click.Choice(SPLIT_METHODS)),
        option("val_fraction", "--val-fraction", type=click.FloatRange(0.01, 0.5)),
        option("test_fraction", "--test-fraction", type=click.FloatRange(0.01, 0.5)),
        option("class_weights", "--class-weights/--no-class-weights"),
        option("stain_augment", "--stain-augment/--no-stain-augment"),
        option("patience", "--patience", type=click.IntRange(min=1)),
        option("seed", "--seed", type=int),
        config_option(config, "eager", "--eager/--no-eager", help=EAGER_HELP),
    ]

    def decorate(command):
        for decorator in reversed(decorators):  # click lists parameters in decoration order
            command = decorator(command)
        return command

    return decorate


_IDC_SIZE = MODELS[DEFAULT_MODEL].native_size


@click.group()
def train() -> None:
    """Train a model on a dataset directory (TensorFlow; needs the [train] extra)."""


@train.command("idc")
@train_options(
    TrainConfig,
    out_help="Run directory to create (model.keras, history, split, metrics).",
    input_size=f"Model input side; {TrainConfig.input_size} upsamples the {_IDC_SIZE}x{_IDC_SIZE} patches "
               f"as the seed did, {_IDC_SIZE} is native.",
    split="patient: grouped by patient, stratified by class; image: the seed's image-level split.",
    class_weights="Weight the loss by inverse class frequency of the training split.",
    stain_augment="Add per-image H&E colour jitter to the augmentation (helps on unseen patients).",
    patience="EarlyStopping patience on val_loss (best weights are restored).",
)
@config_option(TrainConfig, "model", "--model", type=click.Choice(model_names("idc")),
               help="Registered IDC model to train.")
def train_idc_cmd(data_dir: Path, run_dir: Path, **options) -> None:
    """Train an IDC model (the seed's 27-layer CNN) on an IDC-layout directory (PATIENT/0|1/*.png)."""
    _starting(f"training {options['model']} on {data_dir} -> {run_dir}")
    from edgehisto.train.idc import train_idc

    metrics = train_idc(data_dir, run_dir, TrainConfig(**options, verbose=_keras_verbose()), log=_progress)
    click.echo(
        f"{run_dir}: test accuracy {metrics['accuracy']:.4f}, "
        f"balanced accuracy {metrics['balanced_accuracy']:.4f} on {metrics['n']} tiles"
    )


@train.command("breakhis")
@train_options(
    BreakhisConfig,
    out_help="Run directory to create (one .keras per stage, histories, split, metrics).",
    split="patient: grouped by --split-key, stratified by subtype; image: the seed's image-level split.",
    class_weights="Balanced class weights for the subtype stages.",
)
@config_option(BreakhisConfig, "arch", "--arch", type=click.Choice(list(ARCH_MODELS)),
               help="hierarchy: three DenseNet121 models (the seed); multitask: one shared backbone, three heads.")
@config_option(BreakhisConfig, "split_key", "--split-key", type=click.Choice(get_args(SplitKey)),
               help="slide: numeric slide id (leak-safe: 82 folders share 70 ids); patient_folder: folder name.")
@click.option("--magnification", "magnifications", multiple=True, type=click.Choice([str(m) for m in MAGNIFICATIONS]),
              help="Keep only these magnifications (repeatable; default all).")
@config_option(BreakhisConfig, "weights", "--weights",
               help="Backbone weights: 'imagenet' (local Keras cache file only) or a weight file path. "
                    "Default: from scratch.")
@config_option(BreakhisConfig, "fine_tune_epochs", "--fine-tune-epochs", type=click.IntRange(min=0),
               help="With --weights: after the head, fine-tune the last dense block this many epochs.")
@config_option(BreakhisConfig, "colour_normalise", "--colour-normalise/--no-colour-normalise",
               help="Declare per-image colour normalisation in the bundle's preprocessing (each RGB channel's "
                    "mean and std moved to real IDC patches' average; the runtime runs it too).")
@config_option(BreakhisConfig, "balance_binary", "--balance-binary/--no-balance-binary",
               help="Balanced class weights for the binary stage too (benign is the scarce class).")
def train_breakhis_cmd(data_dir: Path, run_dir: Path, magnifications: tuple[str, ...], **options) -> None:
    """Train the BreaKHis DenseNet121 hierarchy (binary -> benign or malignant subtype)."""
    _starting(f"training the BreaKHis {options['arch']} on {data_dir} -> {run_dir}")
    from edgehisto.train.breakhis import train_breakhis

    if options["weights"] not in (None, "imagenet") and not Path(options["weights"]).is_file():
        raise click.BadParameter(f"{options['weights']} is not a file", param_hint="--weights")
    config = BreakhisConfig(magnifications=tuple(int(m) for m in magnifications) or None, **options,
                            verbose=_keras_verbose())
    try:
        metrics = train_breakhis(data_dir, run_dir, config, log=_progress)
    except FileNotFoundError as missing:
        raise click.ClickException(str(missing)) from None
    for stage, m in metrics.items():
        click.echo(f"{run_dir}: {stage}: accuracy {m['accuracy']:.4f}, balanced {m['balanced_accuracy']:.4f}")


@train.command("pretrain-idc")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to create (backbone.keras, pretrain.json, history).")
@config_option(PretrainConfig, "input_size", "--input-size", type=click.IntRange(32, 512),
               help="Patch side; 64 matches a 100X BreaKHis field resized to 128 in microns per pixel.")
@config_option(PretrainConfig, "epochs", "--epochs", type=click.IntRange(min=1))
@config_option(PretrainConfig, "batch_size", "--batch-size", type=click.IntRange(min=1))
@config_option(PretrainConfig, "learning_rate", "--learning-rate", type=click.FloatRange(min=0, min_open=True))
@config_option(PretrainConfig, "seed", "--seed", type=int)
def pretrain_idc_cmd(data_dir: Path, out_dir: Path, **options) -> None:
    """Pretrain a DenseNet121 backbone on real IDC patches, for `train breakhis --weights`."""
    _starting(f"pretraining DenseNet121 on {data_dir} -> {out_dir}")
    from edgehisto.train.starts import pretrain_idc

    record = pretrain_idc(data_dir, out_dir, PretrainConfig(**options, verbose=_keras_verbose()), log=_progress)
    click.echo(f"{out_dir / 'backbone.keras'}: IDC val balanced accuracy "
               f"{record['val_metrics']['balanced_accuracy']:.4f}")


def _parse_start(value: str) -> tuple[str, str | None]:
    if value == START_SCRATCH:
        return value, None
    name, sep, path = value.partition("=")
    if not sep or not name or not Path(path).is_file():
        raise click.BadParameter(f"{value!r}: expected 'scratch' or NAME=WEIGHT_FILE (an existing file)",
                                 param_hint="--start")
    return name, path


@train.command("breakhis-cv")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to create (cv.json after every fold, cv.png).")
@click.option("--start", "starts", multiple=True, default=(START_SCRATCH,), show_default=True,
              help="'scratch' or NAME=WEIGHT_FILE (e.g. idc=runs/pretrain/backbone.keras); repeatable.")
@config_option(CVConfig, "folds", "--folds", type=click.IntRange(min=2))
@config_option(CVConfig, "epochs", "--epochs", type=click.IntRange(min=1))
@config_option(CVConfig, "batch_size", "--batch-size", type=click.IntRange(min=1))
@config_option(CVConfig, "learning_rate", "--learning-rate", type=click.FloatRange(min=0, min_open=True))
@config_option(CVConfig, "split_key", "--split-key", type=click.Choice(get_args(SplitKey)))
@config_option(CVConfig, "class_weights", "--class-weights/--no-class-weights")
@config_option(CVConfig, "stain_augment", "--stain-augment/--no-stain-augment",
               help="Colour jitter in HSV plus per-channel gains while training.")
@config_option(CVConfig, "hed_augment", "--hed-augment/--no-hed-augment",
               help="Stain jitter in H&E space while training: each field's haematoxylin, eosin and DAB amounts "
                    "scaled by up to 20% and shifted by up to 0.1 optical density.")
@config_option(CVConfig, "colour_normalise", "--colour-normalise/--no-colour-normalise")
@config_option(CVConfig, "field_geometry", "--field-geometry", type=click.Choice(FIELD_GEOMETRIES),
               help="squash: the whole field resized to a square, aspect lost (the seed's). fixed-scale: each "
                    "field at its true aspect (squashed 224x224 fields restored to 224x147) resized to "
                    f"--field-height, trained on random {CVConfig.input_size}x{CVConfig.input_size} crops, "
                    "scored on --eval-crops fixed crops.")
@config_option(CVConfig, "field_height", "--field-height", type=click.IntRange(32, 1024),
               help="fixed-scale: the height every field is resized to; the width keeps 700:460 (147: 224x147).")
@config_option(CVConfig, "eval_crops", "--eval-crops", type=click.IntRange(1, 16),
               help="fixed-scale: crops per held-out field (spread across its width, vertically centred) whose "
                    "softmax probabilities are averaged before the image figures and the slide vote.")
@config_option(CVConfig, "slide_balance", "--slide-balance/--no-slide-balance",
               help="Sample weights: each class weighs the same in total and, within a class, each slide "
                    "(each group of --split-key). Not with --class-weights.")
@config_option(CVConfig, "magnification_zoom", "--magnification-zoom",
               type=click.FloatRange(1.0, MAX_MAGNIFICATION_ZOOM),
               help="Magnification as augmentation: each training field zoomed in at random by up to this factor "
                    "(2: a 100X field seen as up to 200X); 1 is off.")
@config_option(CVConfig, "seed", "--seed", type=int)
@config_option(CVConfig, "eager", "--eager/--no-eager", help=EAGER_HELP)
@config_option(CVConfig, "keep_models", "--keep-models/--no-keep-models",
               help="Save each fold's Keras model in --out (86 MB each), so that `edgehisto cv-precision` can "
                    "export every fold and score its held-out fields at fp32 and int8.")
@click.pass_context
def breakhis_cv_cmd(ctx: click.Context, data_dir: Path, out_dir: Path, starts: tuple[str, ...], **options) -> None:
    """Compare backbone starts on the BreaKHis binary stage by grouped k-fold CV over patients."""
    config = _cv_config(ctx, options)
    _starting(f"grouped {options['folds']}-fold CV on {data_dir} -> {out_dir}")
    from edgehisto.metrics.scores import spread_text
    from edgehisto.train.starts import grouped_cv

    parsed = dict(_parse_start(s) for s in starts)
    record = grouped_cv(data_dir, out_dir, parsed, config, log=_progress)
    for name, levels in record["summary"].items():
        image = levels["image"]["balanced_accuracy"]
        click.echo(f"{name}: held-out balanced accuracy {spread_text(image)} "
                   f"over {levels['image']['folds']} folds")


def _cv_config(ctx: click.Context, options: dict) -> CVConfig:
    """The CV's config, or a one-line usage error for options that cannot go together."""
    if options["field_geometry"] == "squash":
        given = [f"--{name.replace('_', '-')}" for name in ("field_height", "eval_crops")
                 if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise click.UsageError(f"{' and '.join(given)} {verb} to --field-geometry fixed-scale only")
    try:
        return CVConfig(**options, verbose=_keras_verbose())
    except ValueError as problem:
        raise click.UsageError(str(problem)) from None


@train.command("breakhis-probe")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for probes.json.")
@click.option("--weights", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Pretrained backbone to probe (e.g. runs/pretrain-idc64/backbone.keras).")
@config_option(CVConfig, "folds", "--folds", type=click.IntRange(min=2))
@config_option(CVConfig, "seed", "--seed", type=int)
def breakhis_probe_cmd(data_dir: Path, out_dir: Path, weights: str | None, folds: int, seed: int) -> None:
    """Linear probes on frozen features (pretrained, random, colour statistics), grouped k-fold CV."""
    _starting(f"linear probes on {data_dir} -> {out_dir}")
    from edgehisto.train.probes import linear_probes

    linear_probes(data_dir, out_dir, weights, folds=folds, seed=seed, log=_progress)
