"""Evaluate a bundle on labelled data with the ONNX runtime: metrics, Grad-CAM panels, localisation.

For each precision every tile is classified with Grad-CAM, and for every stage of the bundle
the report directory gets (``STEM`` = ``<stage>_<precision>``, e.g. ``idc_fp32``):

* ``STEM.json``, ``STEM_confusion.csv``, ``STEM_confusion.png`` (``write_metrics``) and
  ``STEM_predictions.csv`` (one row per tile, with its localisation and deletion numbers);
* ``panels/STEM_<class>.png`` (confident correct vs confidently wrong examples of that true
  class) and ``panels/STEM_grid<K>x2.png`` (one tile per class, the IDC seed's 2x2 grid);

plus ``summary.md`` and ``evaluation.json`` over everything. This is the runtime that ships,
not Keras, so no TensorFlow is imported. The tiles come from ``labelled_tiles``, their outcomes
from ``scoring``, the Markdown from ``summary``; this module runs them and writes the files.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from edgehisto.bundle.manifest import PRECISIONS, StageSpec, load_bundle
from edgehisto.bundle.progress import Progress, no_progress
from edgehisto.evaluate import localisation as loc
from edgehisto.evaluate.gradcam_panels import PanelTile, write_class_grid, write_class_panel
from edgehisto.evaluate.labelled_tiles import bundle_tiles
from edgehisto.evaluate.scoring import TileOutcome, routed_metrics, score_tiles
from edgehisto.evaluate.summary import write_summary
from edgehisto.metrics.figures import write_metrics
from edgehisto.metrics.scores import classification_metrics
from edgehisto.runtime.classifier import Classifier
from edgehisto.runtime.gradcam import map_meaning

_LOG = logging.getLogger(__name__)  # default progress sink; the CLI passes its own


def file_stem(name: str) -> str:
    """A class or stage name made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def write_panels(classifier: Classifier, stage: StageSpec, outcomes: Sequence[TileOutcome],
                 panel_dir: Path, stem: str, n: int) -> list[Path]:
    """Per class: the n most confident correct and incorrect tiles; plus one tile per class.

    Only the chosen tiles are classified again (for their images and maps), so evaluation
    never holds every tile's image in memory.
    """
    panel_dir.mkdir(parents=True, exist_ok=True)
    picks = {}
    for index in range(len(stage.class_names)):
        ranked = sorted((o for o in outcomes if o.true == index), key=lambda o: -o.confidence)
        picks[index] = ([o for o in ranked if o.correct][:n], [o for o in ranked if not o.correct][:n])
    chosen = sorted({o.path for correct, incorrect in picks.values() for o in correct + incorrect})
    results = {r.path: r for r in classifier.classify_paths(chosen, gradcam=True) if r.ok}

    def tile(o: TileOutcome) -> PanelTile | None:
        result = results.get(o.path)
        cams = [s.cam for s in result.stages if s.stage == stage.name] if result else []
        caption = (f"true {stage.class_names[o.true]}\npred {stage.class_names[o.predicted]}"
                   f"\np={o.confidence:.3f}")
        return PanelTile(result.image, cams[0], caption) if cams else None

    def tiles(rows: list[TileOutcome]) -> list[PanelTile]:
        return [t for t in map(tile, rows) if t is not None]

    written = []
    for index, (correct, incorrect) in picks.items():
        name = stage.class_names[index]
        title = f"{stem}: true class {name}, Grad-CAM: {map_meaning(stage.output, stage.class_names)}"
        written.append(write_class_panel(tiles(correct), tiles(incorrect), n, title,
                                         panel_dir / f"{stem}_{file_stem(name)}.png"))
    # the grid shows each class's most confident correct tile, else its most confident wrong one
    grid = [(tiles((correct or incorrect)[:1]) or [None])[0] for correct, incorrect in picks.values()]
    written.append(write_class_grid(grid, stage.class_names, f"{stem}: one tile per class",
                                    panel_dir / f"{stem}_grid{len(grid)}x2.png"))
    return written


def write_predictions(outcomes: Sequence[TileOutcome], class_names: Sequence[str], path: Path) -> Path:
    """One CSV row per tile: classes by name, then the localisation and deletion numbers."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(TileOutcome.__dataclass_fields__))
        writer.writeheader()
        for o in outcomes:
            writer.writerow(asdict(o) | {"true": class_names[o.true], "predicted": class_names[o.predicted],
                                         "explained": class_names[o.explained]})
    return path


def evaluate_bundle(bundle_dir: Path, data_dir: Path, out_dir: Path, precisions: Sequence[str] = PRECISIONS,
                    limit: int | None = None, panel_n: int = 4, top_k_percent: float = 20.0,
                    seed: int = 0, batch_size: int = 64, allow_failed_parity: bool = False,
                    all_tiles: bool = False, log: Callable[[str], None] = _LOG.info,
                    progress: Progress = no_progress) -> dict:
    """Evaluate every stage of a bundle at each precision; writes the report dir, returns its JSON.

    ``log`` receives one line per step; ``progress(done, total, label)`` is called after every
    batch of tiles (label: the precision), for the CLI to draw as it likes.

    A bundle without passed parity gates is refused unless ``allow_failed_parity`` (then the
    report's ``parity_warning`` says so).

    Returns the content of ``evaluation.json``: settings, per ``<stage>_<precision>`` the metrics,
    localisation, deletion test and the files written (relative to ``out_dir``), and failures.
    """
    from edgehisto.bundle.provenance import provenance

    out_dir, bundle = Path(out_dir), load_bundle(bundle_dir)
    settings = {"precisions": list(precisions), "limit": limit, "panel_n": panel_n,
                "top_k_percent": top_k_percent, "seed": seed, "all_tiles": all_tiles}
    first = Classifier(bundle, precision=precisions[0], allow_failed_parity=allow_failed_parity)
    tiles, n_problems, scope = bundle_tiles(bundle, data_dir, limit, all_tiles)
    log(f"evaluating {len(tiles)} tiles of {data_dir}: {scope} ({sum(t.mask_path is not None for t in tiles)} "
        f"with lesion masks, {n_problems} files left out by the scan)")
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"bundle": str(bundle_dir), "data": str(data_dir), "task": bundle.task, "n_tiles": len(tiles),
              "n_scan_problems": n_problems, "scope": scope, "settings": settings, "results": {}, "failures": {},
              "stages_without_tiles": [],
              "parity_warning": first.warning}
    for precision in precisions:
        classifier = Classifier(bundle, precision=precision, allow_failed_parity=allow_failed_parity)
        outcomes, report["failures"][precision] = score_tiles(classifier, tiles, top_k_percent, seed,
                                                              batch_size, progress)
        for stage_name, rows in outcomes.items():
            if not rows:  # routing sent it nothing: say so rather than leave the stage out
                report["stages_without_tiles"].append(f"{stage_name} ({precision})")
                log(f"{file_stem(stage_name)}_{precision}: no tiles routed here")
                continue
            stage, stem = bundle.stages[stage_name], f"{file_stem(stage_name)}_{precision}"
            metrics = classification_metrics([o.true for o in rows], [o.predicted for o in rows],
                                             stage.class_names)
            write_metrics(metrics, out_dir, stem, f"{stage_name} ({precision}, onnxruntime)")
            write_predictions(rows, stage.class_names, out_dir / f"{stem}_predictions.csv")
            panels = write_panels(classifier, stage, rows, out_dir / "panels", stem, panel_n)
            report["results"][stem] = {
                "stage": stage_name, "precision": precision, "metrics": metrics,
                "map_meaning": map_meaning(stage.output, stage.class_names),
                "localisation": loc.localisation_by_class(rows, stage.class_names),
                "deletion": loc.deletion_stats(rows, top_k_percent),
                "files": {"metrics": f"{stem}.json", "confusion": f"{stem}_confusion.png",
                          "predictions": f"{stem}_predictions.csv",
                          "panels": [p.relative_to(out_dir).as_posix() for p in panels]},
            }
            log(f"{stem}: accuracy {metrics['accuracy']:.4f}, balanced {metrics['balanced_accuracy']:.4f}")
        if bundle.routing:
            stem = f"end_to_end_{precision}"
            metrics = routed_metrics(classifier, bundle, tiles)
            write_metrics(metrics, out_dir, stem, f"end to end, routed ({precision}, onnxruntime)")
            report["results"][stem] = {"stage": "end_to_end", "precision": precision, "metrics": metrics,
                                       "files": {"metrics": f"{stem}.json", "confusion": f"{stem}_confusion.png"}}
            log(f"{stem}: accuracy {metrics['accuracy']:.4f}, balanced {metrics['balanced_accuracy']:.4f}")
    report["provenance"] = provenance({"bundle": bundle_dir, "data": data_dir, "out": out_dir, **settings})
    (out_dir / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    write_summary(report, out_dir / "summary.md")
    return report
