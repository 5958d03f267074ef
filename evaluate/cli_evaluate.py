"""``edgehisto evaluate MODEL DATA_DIR --out REPORT_DIR``: metrics and Grad-CAM checks of a bundle."""

from __future__ import annotations

from pathlib import Path

import click

from edgehisto.bundle.manifest import PRECISIONS


@click.command("evaluate")
@click.argument("bundle_dir", metavar="MODEL", type=click.Path(path_type=Path))
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Report directory (metrics, confusion matrices, Grad-CAM panels, summary.md).")
@click.option("--precision", default="both", show_default=True, type=click.Choice([*PRECISIONS, "both"]))
@click.option("--limit", default=None, type=click.IntRange(min=1),
              help="At most this many tiles, evenly subsampled (default: all).")
@click.option("--panel-n", default=4, show_default=True, type=click.IntRange(1, 32),
              help="Correct and incorrect examples per class in each Grad-CAM panel.")
@click.option("--top-k-percent", default=20.0, show_default=True,
              type=click.FloatRange(0, 100, min_open=True, max_open=True),
              help="Deletion test: share of the Grad-CAM map's top pixels to delete (vs as many random).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random deletion masks.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--allow-failed-parity", is_flag=True,
              help="Evaluate a bundle that failed (or never ran) its parity gates; the report says so.")
@click.option("--all-tiles", is_flag=True,
              help="Score every tile of DATA_DIR, not only the bundle's held-out test tiles found there.")
@click.option("--show-tiles", is_flag=True,
              help="Also print one line per tile: its true label, the call, whether it was right, P(call).")
def evaluate(bundle_dir: Path, data_dir: Path, out_dir: Path, precision: str, limit: int | None,
             panel_n: int, top_k_percent: float, seed: int, batch_size: int, allow_failed_parity: bool,
             all_tiles: bool, show_tiles: bool) -> None:
    """Evaluate a bundle with onnxruntime on labelled tiles (IDC or BreaKHis layout): metrics per
    stage, precision and end to end, Grad-CAM panels, localisation against lesion masks and a
    deletion test. Only the bundle's held-out test tiles are scored when DATA_DIR holds them.

    MODEL is an embedded model's name (idc, breakhis) or a bundle directory.
    """
    from edgehisto.cli_progress import progress_reporter
    from edgehisto.evaluate.evaluate_bundle import evaluate_bundle
    from edgehisto.runtime.registry import resolve_bundle

    bundle_dir = resolve_bundle(bundle_dir).path
    precisions = PRECISIONS if precision == "both" else (precision,)
    with progress_reporter() as progress:
        report = evaluate_bundle(bundle_dir, data_dir, out_dir, precisions, limit=limit, panel_n=panel_n,
                                 top_k_percent=top_k_percent, seed=seed, batch_size=batch_size,
                                 allow_failed_parity=allow_failed_parity, all_tiles=all_tiles,
                                 log=lambda line: click.echo(line, err=True), progress=progress)
    for stem, result in report["results"].items():
        metrics, deletion = result["metrics"], result.get("deletion")
        line = (f"{stem}: accuracy {metrics['accuracy']:.4f}, balanced accuracy "
                f"{metrics['balanced_accuracy']:.4f} on {metrics['n']} tiles")
        if deletion:
            line += (f"; deleting the map's top {top_k_percent:g}% ({result['map_meaning']}) costs "
                     f"{_fmt(deletion['mean_drop_top_k'], 4)} vs random {_fmt(deletion['mean_drop_random'], 4)}"
                     + (" (WORSE THAN RANDOM)" if deletion.get("worse_than_random") else ""))
        if show_tiles and "predictions" in result["files"]:
            _echo_tiles(out_dir / result["files"]["predictions"], data_dir)
        click.echo(line)
        for name, scores in result.get("localisation", {}).items():
            click.echo(f"  {name} ({scores['n']} with masks): pointing game {_fmt(scores['pointing_game'])}, "
                       f"energy share {_fmt(scores['energy_share'])} "
                       f"(chance {_fmt(scores['lesion_area_share'])})")
    failed = sum(len(f) for f in report["failures"].values())
    if failed:
        click.echo(f"{failed} tiles or masks failed (listed in evaluation.json)", err=True)
    click.echo(f"report written to {out_dir / 'summary.md'}")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _echo_tiles(predictions: Path, data_dir: Path) -> None:
    """One aligned line per tile of a predictions CSV: file, true label, call, right or wrong, P(call)."""
    import csv

    with open(predictions, newline="") as handle:
        rows = list(csv.DictReader(handle))
    names = [str(Path(r["path"]).relative_to(data_dir.resolve())) if Path(r["path"]).is_relative_to(
        data_dir.resolve()) else Path(r["path"]).name for r in rows]
    width = max([len("file"), *map(len, names)])
    click.echo(f"{'file':<{width}}  {'true':<14} {'called':<14} {'right':<5}  p(called)")
    for name, row in zip(names, rows, strict=True):
        right = "yes" if row["true"] == row["predicted"] else "NO"
        p_called = float(row["confidence"])
        click.echo(f"{name:<{width}}  {row['true']:<14} {row['predicted']:<14} {right:<5}  {p_called:.3f}")
