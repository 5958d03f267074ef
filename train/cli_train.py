"""``edgehisto train idc DATA_DIR --out RUN_DIR``: train a model and fill a run directory."""

from __future__ import annotations

import os
from pathlib import Path

import click


@click.group()
def train() -> None:
    """Train a model on a dataset directory (TensorFlow; needs the [train] extra)."""


@train.command("idc")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory to create (model.keras, history, split, metrics).")
@click.option("--input-size", default=128, show_default=True, type=click.IntRange(32, 512),
              help="Model input side; 128 upsamples the 50x50 patches as the seed did, 50 is native.")
@click.option("--epochs", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--learning-rate", default=1e-3, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--split", "split_method", default="patient", show_default=True,
              type=click.Choice(["patient", "image"]),
              help="patient: grouped by patient, stratified by class; image: the seed's image-level split.")
@click.option("--val-fraction", default=0.15, show_default=True, type=click.FloatRange(0.01, 0.5))
@click.option("--test-fraction", default=0.15, show_default=True, type=click.FloatRange(0.01, 0.5))
@click.option("--class-weights/--no-class-weights", default=False, show_default=True,
              help="Weight the loss by inverse class frequency of the training split.")
@click.option("--stain-augment/--no-stain-augment", default=False, show_default=True,
              help="Add per-image H&E colour jitter to the augmentation (helps on unseen patients).")
@click.option("--patience", default=5, show_default=True, type=click.IntRange(min=1),
              help="EarlyStopping patience on val_loss (best weights are restored).")
@click.option("--seed", default=0, show_default=True, type=int)
def train_idc_cmd(data_dir: Path, run_dir: Path, split_method: str, **options) -> None:
    """Train the 27-layer IDC CNN on an IDC-layout directory (PATIENT/0|1/*.png)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgehisto.train.idc import TrainConfig, train_idc

    config = TrainConfig(split=split_method, **options)
    metrics = train_idc(data_dir, run_dir, config, log=lambda line: click.echo(line, err=True))
    click.echo(
        f"{run_dir}: test accuracy {metrics['accuracy']:.4f}, "
        f"balanced accuracy {metrics['balanced_accuracy']:.4f} on {metrics['n']} tiles"
    )


@train.command("breakhis")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory to create (one .keras per stage, histories, split, metrics).")
@click.option("--arch", default="hierarchy", show_default=True, type=click.Choice(["hierarchy", "multitask"]),
              help="hierarchy: three DenseNet121 models (the seed); multitask: one shared backbone, three heads.")
@click.option("--input-size", default=128, show_default=True, type=click.IntRange(32, 512))
@click.option("--epochs", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--learning-rate", default=1e-4, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--split", "split_method", default="patient", show_default=True, type=click.Choice(["patient", "image"]),
              help="patient: grouped by --split-key, stratified by subtype; image: the seed's image-level split.")
@click.option("--split-key", default="slide", show_default=True, type=click.Choice(["slide", "patient_folder"]),
              help="slide: numeric slide id (leak-safe: 82 folders share 70 ids); patient_folder: folder name.")
@click.option("--magnification", "magnifications", multiple=True, type=click.Choice(["40", "100", "200", "400"]),
              help="Keep only these magnifications (repeatable; default all).")
@click.option("--class-weights/--no-class-weights", default=True, show_default=True,
              help="Balanced class weights for the subtype stages.")
@click.option("--weights", default=None,
              help="Backbone weights: 'imagenet' (local Keras cache file only) or a weight file path. Default: from scratch.")
@click.option("--fine-tune-epochs", default=0, show_default=True, type=click.IntRange(min=0),
              help="With --weights: after the head, fine-tune the last dense block this many epochs.")
@click.option("--stain-augment/--no-stain-augment", default=False, show_default=True)
@click.option("--val-fraction", default=0.15, show_default=True, type=click.FloatRange(0.01, 0.5))
@click.option("--test-fraction", default=0.15, show_default=True, type=click.FloatRange(0.01, 0.5))
@click.option("--patience", default=5, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
def train_breakhis_cmd(data_dir: Path, run_dir: Path, split_method: str, magnifications: tuple[str, ...],
                       **options) -> None:
    """Train the BreaKHis DenseNet121 hierarchy (binary -> benign or malignant subtype)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgehisto.train.breakhis import BreakhisConfig, train_breakhis

    if options["weights"] not in (None, "imagenet") and not Path(options["weights"]).is_file():
        raise click.BadParameter(f"{options['weights']} is not a file", param_hint="--weights")
    config = BreakhisConfig(split=split_method, magnifications=tuple(int(m) for m in magnifications) or None,
                            **options)
    try:
        metrics = train_breakhis(data_dir, run_dir, config, log=lambda line: click.echo(line, err=True))
    except FileNotFoundError as missing:
        raise click.ClickException(str(missing)) from None
    for stage, m in metrics.items():
        click.echo(f"{run_dir}: {stage}: accuracy {m['accuracy']:.4f}, balanced {m['balanced_accuracy']:.4f}")
