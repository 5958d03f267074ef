"""``edgehisto check-parity BUNDLE_DIR [--data DIR]``: the export gates, for anyone's CI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from edgehisto.export.cli_options import gate_threshold_options


@click.command("check-parity")
@click.argument("bundle_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--data", "data_dir", default=None, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Where the data lives: the bundle's held-out tiles are used if found there, else every tile.")
@click.option("--limit", default=512, show_default=True, type=click.IntRange(min=1),
              help="At most this many tiles (evenly subsampled).")
@click.option("--gradcam-limit", default=64, show_default=True, type=click.IntRange(min=1),
              help="Grad-CAM maps compared against GradientTape.")
@gate_threshold_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--write/--no-write", default=False, show_default=True,
              help="Also store the report in the bundle (parity.json, manifest verdict).")
def check_parity(bundle_dir: Path, data_dir: Path | None, limit: int, gradcam_limit: int,
                 thresholds, as_json: bool, write: bool) -> None:
    """Check a bundle against its Keras reference; exit 0 if every gate passes, 1 if one fails."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgehisto.export.parity import check_parity as run_checks
    from edgehisto.export.parity import format_table, write_report

    report = run_checks(bundle_dir, data_dir, thresholds, limit=limit, gradcam_limit=gradcam_limit)
    if write:
        write_report(bundle_dir, report)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else format_table(report))
    if not report.passed:
        raise click.exceptions.Exit(1)
