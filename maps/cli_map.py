"""``edgehisto map SOURCE --out DIR``: a slide region as a probability map, a tile table and QuPath GeoJSON."""

from __future__ import annotations

from pathlib import Path

import click

from edgehisto.bundle.manifest import PRECISIONS
from edgehisto.scale.cli_ray_options import ray_pool_options


@click.command("map")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--model", default=None,
              help="An embedded model's name (idc, breakhis) or a bundle directory. Default: the embedded IDC model.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for map.png, tiles.csv, tiles.geojson and summary.json (one subfolder per "
                   "source when several are given, with slides.csv beside them).")
@click.option("--precision", default="int8", show_default=True, type=click.Choice(PRECISIONS),
              help="int8 is the default here, for throughput over many tiles (as batch and serve).")
@click.option("--stride", default=None, type=click.IntRange(min=1),
              help="Large image: pixels between tile origins (default: the tile size, no overlap).")
@click.option("--tissue-threshold", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Large image: the least tissue share (Otsu on saturation) for a tile to be classified.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Several sources: local maps them one after another in this process; ray maps them on a "
                   "Ray actor pool (the [scale] extra), a source per worker at a time, with the same outputs.")
@ray_pool_options("Ray cluster to join: 'auto' or ray://HOST:PORT (sources and --out on a shared path). "
                  "Default: a local Ray instance.")
def map_cmd(sources: tuple[Path, ...], model: str | None, out_dir: Path, precision: str, stride: int | None,
            tissue_threshold: float, engine: str, workers: int, address: str | None) -> None:
    """Map SOURCE...: a folder of one patient's coordinate-named IDC patches (PATIENT_idx5_xX_yY_classC.png),
    or one large PNG, JPEG or TIFF image tiled at the model's input size.

    Writes map.png (the region with the positive class's probability as colour; beside it the dataset's
    labels when the names carry them), tiles.csv, tiles.geojson (QuPath: File > Import objects from file)
    and summary.json. Exit code 0 when every tile was classified, 1 when a map is partial (failed or
    skipped tiles, counted in summary.json and named on stderr), 2 for a single source that cannot be
    mapped. With several sources, each gets a subfolder of --out and a row in slides.csv; one that
    cannot be mapped is named on stderr, the others carry on, and the exit code is 1.
    """
    from edgehisto.cli_progress import progress_reporter
    from edgehisto.maps.engines import MapOptions, map_local, map_ray, map_to_folder, write_slides_table
    from edgehisto.runtime.classifier import Classifier
    from edgehisto.runtime.cli_classify import echo_caveat
    from edgehisto.runtime.registry import resolve_bundle
    from edgehisto.runtime.verify import cpu_kind

    if engine == "ray":
        import ray  # noqa: F401  (a missing [scale] extra is named here, before any work)
    classifier = Classifier(resolve_bundle(model), precision=precision)
    options, cpu = MapOptions(precision, stride, tissue_threshold), cpu_kind()
    if len(sources) == 1:
        with progress_reporter() as report:
            result = map_to_folder(sources[0], classifier, out_dir, options, cpu, progress=report)
        _report(result, tissue_threshold)
        echo_caveat(classifier.bundle)  # after the map's own lines, as classify prints it
        if not result.complete:
            raise click.exceptions.Exit(1)
        return
    with progress_reporter() as report:
        if engine == "ray":
            results = map_ray(sources, classifier, out_dir, options, cpu, workers, address, progress=report)
        else:
            results = map_local(sources, classifier, out_dir, options, cpu, progress=report)
    for result in results:
        if result.error is not None:
            click.echo(f"error: {result.source}: {result.error}", err=True)
        else:
            _report(result, tissue_threshold)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = write_slides_table(results, out_dir / "slides.csv")
    click.echo(f"{len(results)} sources -> {table}")
    echo_caveat(classifier.bundle)
    if not all(r.complete for r in results):
        raise click.exceptions.Exit(1)


def _report(result, tissue_threshold: float) -> None:
    """The lines one mapped source gets: its title and figures on stdout, its problems on stderr."""
    facts = result.facts
    truth = facts["truth"]
    click.echo(f"{result.title}; positive fraction {_fmt(facts['positive_fraction'])}; "
               f"{facts['tiles_per_second']} tiles/s on {facts['cpu']} -> {result.out_dir}")
    if truth:
        click.echo(f"against the dataset's labels ({truth['n']} tiles): balanced accuracy "
                   f"{_fmt(truth['balanced_accuracy'])}, Dice {_fmt(truth['dice'])}, IoU {_fmt(truth['iou'])}")
    for tile, error in result.failures:
        click.echo(f"error: {tile}: {error}", err=True)
    if result.nothing_classified:
        click.echo(f"warning: no tissue found in {result.source} at --tissue-threshold {tissue_threshold}: "
                   f"{facts['tiles']['background']} background tiles, nothing classified", err=True)
    for reason, names in result.skipped.items():
        click.echo(f"warning: {len(names)} file(s) skipped, {reason} (first: {names[0]})", err=True)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
