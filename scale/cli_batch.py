"""``edgehisto batch SOURCE... --out results.parquet [--engine local|ray]``: resumable batch classification."""

from __future__ import annotations

from pathlib import Path

import click

from edgehisto.bundle.manifest import PRECISIONS
from edgehisto.scale.cli_ray_options import ray_pool_options

_SHOWN_ERRORS = 5


@click.command("batch")
@click.argument("sources", nargs=-1, required=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output Parquet dataset (a directory of part files). A rerun skips inputs already in it.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this process; ray: a Ray Data actor pool (the [scale] extra).")
@click.option("--model", default=None, help="An embedded model's name (idc, breakhis) or a bundle directory.")
@click.option("--precision", default="int8", show_default=True, type=click.Choice(PRECISIONS),
              help="int8 is the default here, for throughput on many files; classify defaults to fp32, the "
                   "reference numbers, for a single file.")
@ray_pool_options("Ray cluster to join: 'auto' (a `ray start` cluster on this node) or ray://HOST:PORT. "
                  "Default: a local Ray instance.")
@click.option("--gradcam", "gradcam_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Also write each input's Grad-CAM panel and map under this directory (a shared path on a cluster).")
@click.option("--csv", "csv_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every row of the output dataset to this CSV file.")
def batch(sources: tuple[str, ...], out_dir: Path, engine: str, model: str | None, precision: str, workers: int,
          address: str | None, gradcam_dir: Path | None, csv_path: Path | None) -> None:
    """Classify files, directories, globs or .csv/.parquet path lists into a Parquet dataset.

    One row per input: path, file sha256, label, a float64 column per class (p_<class>, as in classify's CSV), subtype,
    error, warning, bundle sha256 and precision. A file that fails is a row with an error; the
    job carries on. Exit 0 when every input has a row without error, 1 otherwise.
    """
    from edgehisto.cli_progress import progress_reporter
    from edgehisto.scale.batch import latest_rows, plan, readable_parts, run_local, run_ray, to_csv

    if engine == "ray":
        import ray  # noqa: F401  (a missing [scale] extra is named here, before any work)
    job = plan(list(sources), out_dir, model)
    click.echo(f"{len(job.inputs)} inputs, {len(job.done)} rows already in {out_dir}; "
               f"bundle sha256 {job.bundle_sha256[:12]}, {precision}, engine {engine}", err=True)
    if engine == "ray":
        summary = run_ray(job, out_dir, precision, workers, address=address, gradcam_dir=gradcam_dir)
    else:
        with progress_reporter() as report:  # a bar on a terminal, not a line per 256-row part
            summary = run_local(job, out_dir, precision, gradcam_dir=gradcam_dir, progress=report)
    rate = summary.written / summary.seconds if summary.seconds else 0.0
    click.echo(f"{summary.written} rows written ({summary.failed} with an error), {summary.skipped} skipped as "
               f"already done, in {summary.seconds:.1f} s ({rate:.1f} inputs/s, {summary.engine}, "
               f"{summary.workers} worker(s)) -> {out_dir}", err=True)
    _, broken = readable_parts(out_dir, ["path"])
    if broken:
        click.echo(f"warning: {len(broken)} unreadable part(s) in {out_dir} (an interrupted write?), their inputs "
                   f"were classified again: {', '.join(p.name for p in broken[:3])}", err=True)
    if csv_path is not None:
        to_csv(out_dir, csv_path, job.columns)
    latest = latest_rows(out_dir)
    failed = [(p, "no row was written" if latest.get(p) is None else latest[p]["error"]) for p in job.inputs
              if latest.get(p) is None or latest[p]["error"]]
    # As classify does: the errors on stderr (the first few, then a count), not only inside the dataset.
    for path, error in failed[:_SHOWN_ERRORS]:
        click.echo(f"error: {path}: {error}", err=True)
    if len(failed) > _SHOWN_ERRORS:
        click.echo(f"... and {len(failed) - _SHOWN_ERRORS} more inputs with an error (the error column of "
                   f"{out_dir})", err=True)
    if failed:
        raise click.exceptions.Exit(1)
