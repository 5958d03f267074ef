"""``edgehisto map SOURCE --out DIR``: a slide region as a probability map, a tile table and QuPath GeoJSON."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import click

from edgehisto.bundle.manifest import PRECISIONS


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
def map_cmd(sources: tuple[Path, ...], model: str | None, out_dir: Path, precision: str, stride: int | None,
            tissue_threshold: float) -> None:
    """Map SOURCE...: a folder of one patient's coordinate-named IDC patches (PATIENT_idx5_xX_yY_classC.png),
    or one large PNG, JPEG or TIFF image tiled at the model's input size.

    Writes map.png (the region with the positive class's probability as colour; beside it the dataset's
    labels when the names carry them), tiles.csv, tiles.geojson (QuPath: File > Import objects from file)
    and summary.json. Exit code 0 when every tile was classified, 1 when a map is partial (failed or
    skipped tiles, counted in summary.json and named on stderr), 2 for a single source that cannot be
    mapped. With several sources, each gets a subfolder of --out and a row in slides.csv; one that
    cannot be mapped is named on stderr, the others carry on, and the exit code is 1.
    """
    from edgehisto.errors import EdgehistoError
    from edgehisto.runtime.classifier import Classifier
    from edgehisto.runtime.registry import resolve_bundle

    bundle = resolve_bundle(model)
    classifier = Classifier(bundle, precision=precision)
    if len(sources) == 1:
        facts = _map_one(sources[0], classifier, out_dir, precision, stride, tissue_threshold)
        if not facts["complete"]:
            raise click.exceptions.Exit(1)
        return
    slides, failed = [], False
    for source in sources:
        try:
            facts = _map_one(source, classifier, out_dir / _subfolder(source), precision, stride, tissue_threshold)
        except EdgehistoError as error:  # recorded and named; the other slides carry on
            click.echo(f"error: {source}: {error}", err=True)
            slides.append({"source": str(source), "error": str(error)})
            failed = True
            continue
        truth = facts["truth"] or {}
        slides.append({"source": str(source), "folder": _subfolder(source), "complete": facts["complete"],
                       **{k: facts["tiles"][k] for k in ("classified", "background", "failed")},
                       "positive_fraction": facts["positive_fraction"],
                       "balanced_accuracy": truth.get("balanced_accuracy"), "dice": truth.get("dice"), "error": None})
        failed = failed or not facts["complete"]
    columns = list(dict.fromkeys(k for row in slides for k in row))
    with open(out_dir / "slides.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(slides)
    click.echo(f"{len(slides)} sources -> {out_dir / 'slides.csv'}")
    if failed:
        raise click.exceptions.Exit(1)


def _subfolder(source: Path) -> str:
    return source.resolve().name.replace(".", "_") or "source"


def _map_one(source: Path, classifier, out_dir: Path, precision: str, stride: int | None,
             tissue_threshold: float) -> dict:
    """Map one source into ``out_dir``; returns its summary facts (the one-line report is printed)."""
    import cv2

    from edgehisto.cli_progress import progress_reporter
    from edgehisto.maps.outputs import geojson, map_image, summary, tile_table
    from edgehisto.maps.run import map_slide
    from edgehisto.runtime.verify import cpu_kind

    bundle = classifier.bundle
    with progress_reporter() as report:
        slide = map_slide(source, classifier, stride, tissue_threshold, progress=report)
    name = bundle.manifest.get("name", bundle.path.name)
    facts = summary(slide, name, bundle.manifest_sha256, precision, cpu_kind())
    out_dir.mkdir(parents=True, exist_ok=True)
    tiles = facts["tiles"]
    partial = "" if facts["complete"] else " PARTIAL"
    title = (f"{name} ({precision}){partial}: {tiles['classified']} tiles classified, {tiles['background']} "
             f"background, {tiles['failed']} failed" + (f", patient {slide.patient}" if slide.patient else ""))
    ok = cv2.imwrite(str(out_dir / "map.png"), cv2.cvtColor(map_image(slide, title), cv2.COLOR_RGB2BGR))
    if not ok:
        raise click.ClickException(f"cannot write {out_dir / 'map.png'}")
    rows = tile_table(slide)
    with open(out_dir / "tiles.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["x", "y", "w", "h"])
        writer.writeheader()
        writer.writerows(rows)
    (out_dir / "tiles.geojson").write_text(json.dumps(geojson(slide)))
    (out_dir / "summary.json").write_text(json.dumps(facts, indent=2) + "\n")
    truth = facts["truth"]
    click.echo(f"{title}; positive fraction {_fmt(facts['positive_fraction'])}; "
               f"{facts['tiles_per_second']} tiles/s on {facts['cpu']} -> {out_dir}")
    if truth:
        click.echo(f"against the dataset's labels ({truth['n']} tiles): balanced accuracy "
                   f"{_fmt(truth['balanced_accuracy'])}, Dice {_fmt(truth['dice'])}, IoU {_fmt(truth['iou'])}")
    for row in slide.failed[:5]:
        click.echo(f"error: {row['path'] or (row['x'], row['y'])}: {row['error']}", err=True)
    if not slide.rows:
        click.echo(f"warning: no tissue found in {source} at --tissue-threshold {tissue_threshold}: "
                   f"{slide.background} background tiles, nothing classified", err=True)
    for reason, names in slide.skipped.items():
        click.echo(f"warning: {len(names)} file(s) skipped, {reason} (first: {names[0]})", err=True)
    return facts


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
