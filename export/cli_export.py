"""``edgehisto export RUN_DIR --out BUNDLE_DIR``: write a bundle and run its parity gates."""

from __future__ import annotations

import os
from pathlib import Path

import click

from edgehisto.export.cli_options import gate_threshold_options


@click.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "bundle_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Bundle directory to write (replaced if it already holds a bundle).")
@click.option("--gradcam-layer", default=None, help="Grad-CAM target layer (default: the model's).")
@click.option("--calibration-images", default=128, show_default=True, type=click.IntRange(min=1),
              help="Training images used to calibrate int8.")
@click.option("--calibration-method", default="MinMax", show_default=True,
              type=click.Choice(["MinMax", "Entropy", "Percentile"]))
@click.option("--per-channel/--per-tensor", default=True, show_default=True,
              help="Per-channel int8 weight scales.")
@click.option("--fp32-after", default=None, metavar="NODE",
              help="Keep the backbone's nodes after the last node whose name contains NODE in fp32 "
                   "(e.g. pool4_pool: DenseNet121's last dense block).")
@click.option("--quantize-ops", default=None, metavar="OP[,OP...]",
              help="Operator types to quantise (default: Conv,MatMul,Gemm,Concat,MaxPool,AveragePool, the ops "
                   "with exact integer kernels on every CPU; a subset only, e.g. without Concat for DenseNet, "
                   "whose concatenations would share one scale).")
@click.option("--tflite/--no-tflite", default=True, show_default=True,
              help="Also write TFLite fp32 and int8 files (and check them).")
@click.option("--data", "data_dir", default=None, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Labelled data for the parity gates (default: the run's test split).")
@gate_threshold_options
def export_cmd(run_dir: Path, bundle_dir: Path, gradcam_layer: str | None, calibration_images: int,
               calibration_method: str, per_channel: bool, fp32_after: str | None, quantize_ops: str | None,
               tflite: bool,
               data_dir: Path | None,
               thresholds) -> None:
    """Export a trained run to ONNX fp32 + int8 with exact Grad-CAM graphs, then check parity."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgehisto.export.exporter import export_run
    from edgehisto.export.parity import check_parity, format_table, write_report
    from edgehisto.export.quantize import PORTABLE_OP_TYPES, QuantizationChoice

    op_types = PORTABLE_OP_TYPES
    if quantize_ops is not None:
        op_types = tuple(op.strip() for op in quantize_ops.split(",") if op.strip())
        if not op_types or set(op_types) - set(PORTABLE_OP_TYPES):
            raise click.BadParameter(f"{quantize_ops!r}: name one or more of {','.join(PORTABLE_OP_TYPES)}",
                                     param_hint="--quantize-ops")
    choice = QuantizationChoice(per_channel=per_channel, calibration_method=calibration_method, fp32_after=fp32_after,
                                op_types=op_types)
    manifest = export_run(run_dir, bundle_dir, gradcam_layer=gradcam_layer, calibration_count=calibration_images,
                          choice=choice, tflite=tflite, log=lambda line: click.echo(line, err=True))
    click.echo(f"wrote {manifest}", err=True)
    report = check_parity(bundle_dir, data_dir, thresholds)
    write_report(bundle_dir, report)
    click.echo(format_table(report))
    if not report.passed:
        click.secho("EXPORT FAILED ITS PARITY GATES: do not deploy this bundle (see parity.json)",
                    fg="red", bold=True, err=True)
        raise click.exceptions.Exit(1)
