"""Map one or many sources into folders, in this process or on a Ray actor pool, with the same outputs.

``map_to_folder`` is the unit: one source -> map.png, tiles.csv, tiles.geojson and summary.json in one
folder, and a ``MapResult`` (plain data, so it crosses a Ray worker's boundary) that the CLI reports.
``map_local`` and ``map_ray`` run it over many sources; a source that cannot be mapped becomes a result
with its error, and the others carry on.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from edgehisto.bundle.progress import Progress, no_progress
from edgehisto.errors import EdgehistoError
from edgehisto.maps.outputs import geojson_features, map_image, summary, tile_columns, tile_table
from edgehisto.maps.run import SlideMap, map_slide
from edgehisto.runtime.classifier import Classifier

SHOWN_FAILURES = 5  # failed tiles named per source; the rest are counted in summary.json


@dataclass(frozen=True)
class MapOptions:
    """How every source of one ``map`` command is tiled and classified."""

    precision: str = "int8"
    stride: int | None = None
    tissue_threshold: float = 0.5


@dataclass
class MapResult:
    """What mapping one source gave: its summary facts and what the CLI says about it."""

    source: str
    out_dir: str | None
    facts: dict | None = None  # summary.json's content; None when the source could not be mapped
    title: str = ""
    error: str | None = None  # the source as a whole could not be mapped
    failures: list[tuple[str, str]] = field(default_factory=list)  # (tile, error), the first few
    skipped: dict[str, list[str]] = field(default_factory=dict)
    nothing_classified: bool = False

    @property
    def complete(self) -> bool:
        """Mapped, with every tile classified."""
        return self.facts is not None and bool(self.facts["complete"])


def subfolder(source: Path) -> str:
    """The folder name of one source's outputs when several are mapped together."""
    return Path(source).resolve().name.replace(".", "_") or "source"


def map_to_folder(source: Path, classifier: Classifier, out_dir: Path, options: MapOptions, cpu: str,
                  progress: Progress = no_progress) -> MapResult:
    """Map ``source`` and write its four outputs into ``out_dir``.

    Raises:
        MapSourceError, InvalidImage: the source cannot be mapped as a whole (nothing is written).
        OSError: an output cannot be written.
    """
    bundle = classifier.bundle
    slide = map_slide(source, classifier, options.stride, options.tissue_threshold, progress=progress)
    name = bundle.name
    facts = summary(slide, name, bundle.manifest_sha256, options.precision, cpu)
    tiles = facts["tiles"]
    partial = "" if facts["complete"] else " PARTIAL"
    title = (f"{name} ({options.precision}){partial}: {tiles['classified']} tiles classified, "
             f"{tiles['background']} background, {tiles['failed']} failed"
             + (f", patient {slide.patient}" if slide.patient else ""))
    out_dir.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_dir / "map.png"), cv2.cvtColor(map_image(slide, title), cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {out_dir / 'map.png'}")
    with open(out_dir / "tiles.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=tile_columns(slide))
        writer.writeheader()
        writer.writerows(tile_table(slide))
    _write_geojson(slide, out_dir / "tiles.geojson")
    (out_dir / "summary.json").write_text(json.dumps(facts, indent=2) + "\n")
    failures = [(r["path"] or f"({r['x']}, {r['y']})", r["error"]) for r in slide.failed[:SHOWN_FAILURES]]
    return MapResult(str(source), str(out_dir), facts, title, None, failures, dict(slide.skipped), not slide.rows)


def _write_geojson(slide: SlideMap, path: Path) -> None:
    """The FeatureCollection written a feature at a time: a 100,000-tile map is never one string in memory."""
    with open(path, "w") as handle:
        handle.write('{"type": "FeatureCollection", "features": [')
        for i, feature in enumerate(geojson_features(slide)):
            handle.write((", " if i else "") + json.dumps(feature))
        handle.write("]}")


def slide_row(result: MapResult) -> dict:
    """One source's row of slides.csv."""
    if result.facts is None:
        return {"source": result.source, "error": result.error}
    facts, truth = result.facts, result.facts["truth"] or {}
    return {"source": result.source, "folder": Path(result.out_dir).name, "complete": facts["complete"],
            **{k: facts["tiles"][k] for k in ("classified", "background", "failed")},
            "positive_fraction": facts["positive_fraction"],
            "balanced_accuracy": truth.get("balanced_accuracy"), "dice": truth.get("dice"), "error": None}


def write_slides_table(results: Sequence[MapResult], path: Path) -> Path:
    """slides.csv: a row per source, in the order given."""
    rows = [slide_row(r) for r in results]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _map_or_record(source: Path, classifier: Classifier, out_dir: Path, options: MapOptions, cpu: str,
                   progress: Progress = no_progress) -> MapResult:
    try:
        return map_to_folder(source, classifier, out_dir, options, cpu, progress)
    except (EdgehistoError, OSError) as error:  # recorded and named; the other sources carry on
        return MapResult(str(source), None, error=str(error))


def map_local(sources: Sequence[Path], classifier: Classifier, out_dir: Path, options: MapOptions, cpu: str,
              progress: Progress = no_progress) -> list[MapResult]:
    """Map every source in this process, one after another, each into its own subfolder of ``out_dir``."""
    results = []
    for source in sources:
        def report(done: int, total: int, label: str, name: str = Path(source).name) -> None:
            progress(done, total, f"{name} {label}")

        results.append(_map_or_record(Path(source), classifier, out_dir / subfolder(source), options, cpu, report))
    return results


class _RayMapper:
    """A Ray actor: loads and checks the bundle once, then maps whole sources."""

    def __init__(self, bundle_path: str, bundle_sha256: str, options: MapOptions, cpu: str, threads: int):
        from edgehisto.scale.ray_session import worker_bundle

        bundle = worker_bundle(bundle_path, bundle_sha256)
        self.classifier = Classifier(bundle, precision=options.precision, threads=threads)
        self.options, self.cpu = options, cpu

    def map(self, source: str, out_dir: str) -> MapResult:
        return _map_or_record(Path(source), self.classifier, Path(out_dir), self.options, self.cpu)


def map_ray(sources: Sequence[Path], classifier: Classifier, out_dir: Path, options: MapOptions, cpu: str,
            workers: int, address: str | None = None, threads: int = 1,
            progress: Progress = no_progress) -> list[MapResult]:
    """Map the sources on a pool of ``workers`` Ray actors (a source per call), results in source order.

    Every worker checks that its copy of the bundle is the driver's (manifest sha256); the sources and
    ``out_dir`` must be readable and writable at the same paths on every node.
    """
    import ray
    from ray.util import ActorPool

    from edgehisto.scale.ray_session import ray_session

    bundle = classifier.bundle
    with ray_session(workers, address):
        actor = ray.remote(num_cpus=1, max_restarts=0)(_RayMapper)
        pool = ActorPool([actor.remote(str(bundle.path), bundle.manifest_sha256, options, cpu, threads)
                          for _ in range(min(workers, len(sources)))])
        jobs = [(str(Path(s).resolve()), str((out_dir / subfolder(s)).resolve())) for s in sources]
        by_source: dict[str, MapResult] = {}
        for done, result in enumerate(pool.map_unordered(lambda a, job: a.map.remote(*job), jobs), start=1):
            by_source[result.source] = result
            progress(done, len(jobs), "sources")
    return [_with_source(by_source[job[0]], source) for job, source in zip(jobs, sources, strict=True)]


def _with_source(result: MapResult, source: Path) -> MapResult:
    """The result named by the source as the user gave it (workers saw the resolved path)."""
    result.source = str(source)
    return result
