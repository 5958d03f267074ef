"""Evaluate a bundle on labelled data with the ONNX runtime: metrics, Grad-CAM panels, localisation.

For each precision every tile is classified with Grad-CAM, and for every stage of the bundle
the report directory gets (``STEM`` = ``<stage>_<precision>``, e.g. ``idc_fp32``):

* ``STEM.json``, ``STEM_confusion.csv``, ``STEM_confusion.png`` (``write_metrics``) and
  ``STEM_predictions.csv`` (one row per tile, with its localisation and deletion numbers);
* ``panels/STEM_<class>.png`` (confident correct vs confidently wrong examples of that true
  class) and ``panels/STEM_grid<K>x2.png`` (one tile per class, the IDC seed's 2x2 grid);

plus ``summary.md`` and ``evaluation.json`` over everything. This is the runtime that ships,
not Keras, so no TensorFlow is imported.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgehisto.bundle.manifest import PRECISIONS, Bundle, StageSpec, load_bundle
from edgehisto.bundle.preprocess import normalize
from edgehisto.bundle.progress import Progress, no_progress
from edgehisto.datasets.labelled import even_subsample
from edgehisto.errors import EdgehistoError
from edgehisto.evaluate import localisation as loc
from edgehisto.evaluate.gradcam_panels import PanelTile, write_class_grid, write_class_panel
from edgehisto.metrics.figures import write_metrics
from edgehisto.metrics.scores import classification_metrics
from edgehisto.runtime.classifier import Classifier
from edgehisto.runtime.gradcam import explained_class, map_meaning

_LOG = logging.getLogger(__name__)  # default progress sink; the CLI passes its own


@dataclass(frozen=True)
class LabelledTile:
    """A tile file, its true class per stage it is labelled for, and its lesion mask if any."""

    path: Path
    truth: dict[str, int]  # stage name -> true class index
    mask_path: Path | None = None
    size: tuple[int, int] | None = None  # (height, width) of the file, checked against its mask
    end_to_end: int = -1  # task-level label (BreaKHis: 8-class index), for routed metrics


@dataclass
class TileOutcome:
    """What one stage at one precision made of one tile (``None``: not measurable here)."""

    path: str
    true: int
    predicted: int
    confidence: float  # probability of the predicted class
    explained: int = -1  # the class whose score the Grad-CAM map explains (``runtime.gradcam.explained_class``)
    explained_probability: float = 0.0  # its probability, what the deletion test measures the drop of
    lesion_area_share: float | None = None  # set only for tiles with a lesion mask
    pointing_hit: bool | None = None
    energy_share: float | None = None
    deletion_drop: float | None = None  # confidence lost when the top-k% map pixels are deleted
    random_drop: float | None = None  # ... when as many random pixels are deleted

    @property
    def correct(self) -> bool:
        """Whether the prediction matches the true label."""
        return self.true == self.predicted


def bundle_tiles(bundle: Bundle, data_dir: Path, limit: int | None,
                 all_tiles: bool = False) -> tuple[list[LabelledTile], int, str]:
    """(tiles to evaluate, files the scan left out, what was scored) for the bundle's task.

    By default only the bundle's held-out test tiles are scored when they are all under
    ``data_dir``: scoring the tiles a model was trained on would flatter it.
    """
    from edgehisto.datasets.labelled import held_out_relpaths
    from edgehisto.datasets.tasks import TASKS, breakhis_labels

    if bundle.task == "idc":
        from edgehisto.datasets.idc import scan_idc

        dataset = scan_idc(Path(data_dir))
        labels = dataset.labels
    elif bundle.task == "breakhis":
        from edgehisto.datasets.breakhis import scan_breakhis

        dataset = scan_breakhis(Path(data_dir))
        labels = breakhis_labels(dataset)
    else:
        raise EdgehistoError(f"evaluate does not know the task {bundle.task!r}")
    truth = TASKS[bundle.task].stage_labels(labels)
    tiles = [LabelledTile(t.path, {s: int(v[i]) for s, v in truth.items() if v[i] >= 0}, t.mask_path,
                          (t.height, t.width) if t.height else None, int(labels[i]))
             for i, t in enumerate(dataset.tiles)]
    held_out = None if all_tiles else held_out_relpaths(bundle, Path(data_dir))
    if held_out is not None:
        tiles = [tile for tile, t in zip(tiles, dataset.tiles, strict=True) if t.relpath in held_out]
        scope = f"the bundle's held-out test tiles ({len(held_out)})"
    elif all_tiles:
        scope = "every tile of the data folder (--all-tiles; training tiles included if they are there)"
    else:
        scope = ("every tile of the data folder: the bundle's held-out listing is not there, so training "
                 "tiles may be included")
    return [tiles[i] for i in even_subsample(len(tiles), limit)], len(dataset.problems), scope


def routed_metrics(classifier: Classifier, bundle: Bundle, tiles: Sequence[LabelledTile]) -> dict:
    """End-to-end metrics of the routed label (e.g. BreaKHis 8-class), as the runtime routes."""
    from edgehisto.datasets.tasks import END_TO_END_CLASSES

    classes = END_TO_END_CLASSES[bundle.task]
    results = classifier.classify_paths([t.path for t in tiles])
    pairs = [(t.end_to_end, classes.index(r.stages[-1].label)) for t, r in zip(tiles, results, strict=True) if r.ok]
    return classification_metrics([p[0] for p in pairs], [p[1] for p in pairs], classes)


@dataclass
class _Scored:
    """A tile's outcome with what the deletion test still needs."""

    outcome: TileOutcome
    image: np.ndarray
    heat: np.ndarray
    rng: np.random.Generator


def score_tiles(classifier: Classifier, tiles: Sequence[LabelledTile], top_k_percent: float,
                seed: int = 0, batch_size: int = 64, progress: Progress = no_progress
                ) -> tuple[dict[str, list[TileOutcome]], list[dict]]:
    """Classify tiles with Grad-CAM and score each stage's maps: ({stage: outcomes}, failures).

    Per-tile failures (unreadable tile or mask) are collected, not raised. Random deletion masks
    are seeded per tile, so every precision deletes the same random pixels.
    """
    outcomes: dict[str, list[TileOutcome]] = {name: [] for name in classifier.stages}
    failures: list[dict] = []
    for start in range(0, len(tiles), batch_size):
        chunk = tiles[start:start + batch_size]
        results = classifier.classify_paths([t.path for t in chunk], gradcam=True, batch_size=batch_size)
        pending: dict[str, list[_Scored]] = {}
        for index, (tile, result) in enumerate(zip(chunk, results, strict=True), start=start):
            if not result.ok:
                failures.append({"path": result.path, "error": result.error})
                continue
            lesion = _lesion(tile, classifier, failures)
            for stage in result.stages:
                if stage.stage not in tile.truth:
                    continue
                spec = classifier.stages[stage.stage]
                explained = explained_class(spec.output, len(spec.class_names), stage.class_index)
                outcome = TileOutcome(result.path, tile.truth[stage.stage], stage.class_index,
                                      stage.probabilities[stage.label], explained,
                                      stage.probabilities[spec.class_names[explained]])
                heat = loc.upsample_map(stage.cam, result.image.shape[:2])
                if lesion is not None:
                    outcome.lesion_area_share = float(lesion.mean())
                    outcome.pointing_hit = loc.pointing_hit(heat, lesion)
                    outcome.energy_share = loc.energy_share(heat, lesion)
                outcomes[stage.stage].append(outcome)
                pending.setdefault(stage.stage, []).append(
                    _Scored(outcome, result.image, heat, np.random.default_rng([seed, index])))
        for stage_name, scored in pending.items():
            _deletion_test(classifier, classifier.stages[stage_name], scored, top_k_percent / 100.0)
        progress(min(start + batch_size, len(tiles)), len(tiles), f"{classifier.precision} tiles")
    return outcomes, failures


def _lesion(tile: LabelledTile, classifier: Classifier, failures: list[dict]) -> np.ndarray | None:
    if tile.mask_path is None:
        return None
    try:
        return loc.load_mask(tile.mask_path, classifier.spec, tile.size)
    except EdgehistoError as error:
        failures.append({"path": str(tile.mask_path), "error": str(error)})
        return None


def _deletion_test(classifier: Classifier, stage: StageSpec, scored: list[_Scored], fraction: float) -> None:
    """Fill in the drops, in the probability of the class the map explains, for top-k% and random deletion.

    Deleted pixels take the background value (``pad_value``). For a single-sigmoid stage the map is
    the positive class's evidence, so the drop is measured in that class's probability whatever the
    predicted label: a map of IDC evidence is faithful when deleting its top pixels lowers P(IDC).
    """
    scored = [s for s in scored if s.heat.max() > 0]  # an all-zero map has no top pixels
    if not scored:
        return
    value = classifier.spec.pad_value
    deleted = [loc.delete_pixels(s.image, loc.top_fraction_mask(s.heat, fraction), value) for s in scored]
    deleted += [loc.delete_pixels(s.image, loc.random_fraction_mask(s.heat.shape, fraction, s.rng), value)
                for s in scored]
    x = normalize(np.stack(deleted), classifier.spec)
    probabilities = classifier.head(classifier.activations(x, stage), stage)[1]
    n = len(scored)
    for row, s in enumerate(scored):
        before, explained = s.outcome.explained_probability, s.outcome.explained
        s.outcome.deletion_drop = before - float(probabilities[row, explained])
        s.outcome.random_drop = before - float(probabilities[n + row, explained])


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


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def write_summary(report: dict, path: Path) -> Path:
    """A short Markdown summary: key numbers in tables, then every figure, linked relatively."""
    k, results = report["settings"]["top_k_percent"], report["results"]
    lines = [f"# Evaluation of `{report['bundle']}`", "",
             f"{report['n_tiles']} tiles of `{report['data']}` (task `{report['task']}`): {report['scope']}. "
             "onnxruntime CPU. Grad-CAM maps: " + "; ".join(
                 f"{r['stage']} shows {r['map_meaning']}"
                 for r in {r["stage"]: r for r in results.values() if "map_meaning" in r}.values())
             + ". All numbers: [evaluation.json](evaluation.json).",
             *([f"No tiles were routed to: {', '.join(report['stages_without_tiles'])}."]
               if report["stages_without_tiles"] else []), "",
             "## Classification", "",
             "| stage | precision | n | accuracy | balanced accuracy | recall per class |",
             "|---|---|---:|---:|---:|---|"]
    for r in results.values():
        m = r["metrics"]
        recall = ", ".join(f"{name} {_num(c['recall'])}" for name, c in m["per_class"].items())
        lines.append(f"| {r['stage']} | {r['precision']} | {m['n']} | {_num(m['accuracy'])} | "
                     f"{_num(m['balanced_accuracy'])} | {recall} |")
    lines += ["", "## Grad-CAM localisation (tiles with lesion masks)", "",
              "Pointing game: the map's peak lies in the lesion. Energy share: the map's share inside "
              "the lesion. Chance: the lesion's share of the tile, which a uniform map scores on both. "
              "*correct*: correctly classified tiles only.", ""]
    rows = [(r, name, c) for r in results.values() for name, c in r.get("localisation", {}).items()]
    if rows:
        lines += ["| stage | precision | true class | n | pointing game | energy share | chance | "
                  "pointing game (correct) | energy share (correct) |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['stage']} | {r['precision']} | {name} | {c['n']} | {_num(c['pointing_game'])} | "
                  f"{_num(c['energy_share'])} | {_num(c['lesion_area_share'])} | "
                  f"{_num(c['correct']['pointing_game'])} | {_num(c['correct']['energy_share'])} |"
                  for r, name, c in rows]
    else:
        lines.append("No evaluated tile has a lesion mask, so there is nothing to localise.")
    lines += ["", "## Deletion test", "",
              f"Drop in the probability of the class a map explains (the positive class for a sigmoid "
              f"stage, else the predicted class) when the map's top {k:g}% pixels are set to the background "
              f"value, against {k:g}% random pixels: a map that points at the evidence costs more than chance. "
              "A map that costs less than random is flagged: it does not show what the score rests on.", "",
              f"| stage | precision | n | drop, top {k:g}% | drop, random {k:g}% | tiles where top beats random |",
              "|---|---|---:|---:|---:|---:|"]
    for r in (r for r in results.values() if "deletion" in r):
        d = r["deletion"]
        worse = d["mean_drop_top_k"] is not None and d["mean_drop_random"] is not None \
            and d["mean_drop_top_k"] < d["mean_drop_random"]
        lines.append(f"| {r['stage']} | {r['precision']} | {d['n']} | {_num(d['mean_drop_top_k'], 4)}"
                     f"{' **(worse than random)**' if worse else ''} | "
                     f"{_num(d['mean_drop_random'], 4)} | {_num(d['share_top_k_beats_random'])} |")
    lines += ["", "## Figures"]
    for stem, r in results.items():
        files = r["files"]
        links = f"[metrics]({files['metrics']})" + (
            f" · [per-tile predictions]({files['predictions']})" if "predictions" in files else "")
        lines += ["", f"### {stem}", "", links, "", f"![{stem} confusion matrix]({files['confusion']})", ""]
        lines += [line for panel in files.get("panels", []) for line in (f"![{Path(panel).stem}]({panel})", "")]
    failures = {p: f for p, f in report["failures"].items() if f}
    if failures:
        lines += ["", "## Failures", ""]
        lines += [f"- {p}: {len(f)} (first: `{f[0]['path']}`: {f[0]['error']})" for p, f in failures.items()]
    path.write_text("\n".join(lines) + "\n")
    return path
