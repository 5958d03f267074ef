"""``edgehisto cv-precision CV_DIR --data DIR``: a grouped CV's folds exported and scored at fp32 and int8."""

from __future__ import annotations

import os
from pathlib import Path

import click


@click.command("cv-precision")
@click.argument("cv_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The BreaKHis data directory the CV ran on.")
@click.option("--like", "like", default=None, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Quantise as this bundle's binary stage was (default: the embedded breakhis model).")
@click.option("--calibration-images", default=None, type=click.IntRange(min=1),
              help="Training fields of each fold that calibrate its int8 (default: as many as --like used).")
def cv_precision_cmd(cv_dir: Path, data_dir: Path, like: Path | None, calibration_images: int | None) -> None:
    """Export each fold model of `train breakhis-cv --keep-models` and score its held-out fields at fp32 and int8.

    Writes cv_precision.json in CV_DIR: per fold, image and slide figures of Keras, ONNX fp32 and
    int8, with each precision's agreement with the one before it; mean and sd over folds.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgehisto.bundle.manifest import load_bundle
    from edgehisto.export.cv_precision import cv_precision
    from edgehisto.export.quantize import QuantizationChoice
    from edgehisto.metrics.scores import spread_text
    from edgehisto.runtime.registry import BREAKHIS_MODEL, MODELS_DIR

    bundle = load_bundle(like or MODELS_DIR / BREAKHIS_MODEL)
    recorded = bundle.quantization("binary")
    if not recorded:
        raise click.BadParameter(f"{bundle.path} records no quantisation of a binary stage", param_hint="--like")
    known = QuantizationChoice.__dataclass_fields__
    choice = QuantizationChoice(**{key: value for key, value in recorded.items() if key in known})
    count = calibration_images or recorded.get("calibration_images") or 128
    result = cv_precision(cv_dir, data_dir, choice, count, log=lambda line: click.echo(line, err=True))
    for name, levels in result["summary"].items():
        for level, figures in levels.items():
            image, slide = (spread_text(figures[side]["balanced_accuracy"]) for side in ("image", "patient"))
            click.echo(f"{name} {level}: balanced accuracy image {image}, slide {slide} "
                       f"over {figures['image']['folds']} folds")
    click.echo(f"wrote {cv_dir / 'cv_precision.json'}", err=True)
