"""``edgehisto verify [BUNDLE]``: replay the bundle's golden set on this machine and gate it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgehisto.bundle.manifest import PRECISIONS


@click.command("verify")
@click.argument("bundle_dir", required=False, type=click.Path(path_type=Path))
@click.option("--precision", default="both", show_default=True, type=click.Choice([*PRECISIONS, "both"]),
              help="Which ONNX backbones to run (int8 alone is the quick check under emulation).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify(bundle_dir: Path | None, precision: str, as_json: bool) -> None:
    """Check a bundle on this machine: sha256 of every file, then its golden tiles.

    Needs the runtime only (no TensorFlow, no data). BUNDLE is a directory or an embedded
    model's name (default: the embedded default). Exit code 0 when every gate passes, 1 when
    one fails, 2 for an unusable bundle.
    """
    from edgehisto.runtime.registry import resolve_bundle
    from edgehisto.runtime.verify import format_report, verify_bundle, verify_precisions

    report = verify_bundle(resolve_bundle(bundle_dir), verify_precisions(precision))
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else format_report(report))
    if not report.passed:
        raise click.exceptions.Exit(1)
