"""``edgehisto export-variants [BUNDLE] --data DIR --out DIR``: the alternatives ``bench --tuning-variants`` times."""

from __future__ import annotations

import os
from pathlib import Path

import click


@click.command("export-variants")
@click.argument("bundle_dir", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Tiles to calibrate int8 on (the bundle's held-out test tiles are left out).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the variant ONNX files and variants.json.")
def export_variants_cmd(bundle_dir: Path | None, data_dir: Path, out_dir: Path) -> None:
    """Export int8 and input-layout variants of a bundle's entry-stage backbone (default: the embedded model)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgehisto.export.variants import VARIANTS_FILE, export_variants
    from edgehisto.runtime.registry import resolve_bundle

    bundle = resolve_bundle(bundle_dir)
    described = export_variants(bundle.path, data_dir, out_dir, log=lambda line: click.echo(line, err=True))
    for variant in described["variants"]:
        click.echo(f"wrote {out_dir / variant['file']}  ({variant['name']})")
    click.echo(f"wrote {out_dir / VARIANTS_FILE}")
