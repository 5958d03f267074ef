"""``edgehisto check-parity BUNDLE_DIR [--data DIR]``: the export gates, for anyone's CI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click


@click.command("check-parity")
@click.argument("bundle_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--data", "data_dir", default=None, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Where the data lives: the bundle's held-out tiles are used if found there, else every tile.")
@click.option("--limit", default=512, show_default=True, type=click.IntRange(min=1),
              help="At most this many tiles (evenly subsampled).")
@click.option("--gradcam-limit", default=64, show_default=True, type=click.IntRange(min=1),
              help="Grad-CAM maps compared against GradientTape.")
@click.option("--max-prob-diff", default=1e-4, show_default=True, type=float,
              help="fp32 gate: max |p_onnx - p_keras|.")
@click.option("--min-agreement", default=0.97, show_default=True, type=click.FloatRange(0, 1),
              help="int8 gate: top-1 agreement with Keras.")
@click.option("--max-accuracy-drop", default=0.01, show_default=True, type=float,
              help="int8 gate: accuracy drop vs Keras (0.01 = 1 point).")
@click.option("--min-pearson", default=0.99, show_default=True, type=click.FloatRange(-1, 1),
              help="Grad-CAM gate: per-map Pearson r against GradientTape.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--write/--no-write", default=False, show_default=True,
              help="Also store the report in the bundle (parity.json, manifest verdict).")
def check_parity(bundle_dir: Path, data_dir: Path | None, limit: int, gradcam_limit: int,
                 max_prob_diff: float, min_agreement: float, max_accuracy_drop: float,
                 min_pearson: float, as_json: bool, write: bool) -> None:
    """Check a bundle against its Keras reference; exit 0 if every gate passes, 1 if one fails."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgehisto.export.parity import Thresholds, format_table, write_report
    from edgehisto.export.parity import check_parity as run_checks

    thresholds = Thresholds(max_prob_diff, min_agreement, max_accuracy_drop, min_pearson)
    report = run_checks(bundle_dir, data_dir, thresholds, limit=limit, gradcam_limit=gradcam_limit)
    if write:
        write_report(bundle_dir, report)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else format_table(report))
    if not report.passed:
        raise click.exceptions.Exit(1)
