"""The BreaKHis model card's cross-validation sections: the recipe table, later levers, probes, the CV target."""

from __future__ import annotations

from edgehisto.metrics.scores import spread_text


def probe_lines(probes: dict | None) -> list[str]:
    """The frozen-feature probes' table, when the card has them."""
    if not probes:
        return []
    lines = ["", f"Frozen features, logistic regression, the same grouped {probes['folds']}-fold CV "
                 "(`edgehisto train breakhis-probe`): what a start's features carry before any fine-tuning.", "",
             "| features | held-out binary balanced acc (mean ± sd) |", "|---|---|"]
    names = {"pretrained_frozen": "IDC-pretrained DenseNet121, frozen", "random_frozen": "random DenseNet121, frozen",
             "colour_statistics": "per-channel colour mean and std (6 numbers)"}
    lines += [f"| {names.get(k, k)} | {spread_text(v)} |" for k, v in probes["probes"].items()]
    return lines


def cv_lines(records: dict[str, dict]) -> list[str]:
    """The section on how the recipe was chosen: the CV rows the model's recipe was picked among."""
    if not records:
        return ["", "Grouped cross-validation: not run for this build."]
    first = next(iter(records.values()))
    cfg = first["config"]
    return ["", f"## Choosing the recipe: grouped {cfg['folds']}-fold CV over {first['n_groups']} slide ids "
                f"({first['n_images']} fields)", "",
            f"Binary stage, every slide held out once, {cfg['epochs']} epochs at Adam {cfg['learning_rate']} "
            "(fixed: no held-out data steers training), one run per fold and recipe; the same folds for every "
            "recipe. Mean ± sd over folds; the slide level is the majority vote of a slide's fields. Figures "
            "are of the Keras fp32 model of each fold.", "", *cv_table(records)]


def later_cv_lines(later: dict | None, pretrain: dict | None, epochs: int | None = None) -> list[str]:
    """Levers measured after this model was trained, each against a baseline on the backbone they shared.

    ``epochs``: the recipe table's; a later row trained for longer has that as its lever.
    """
    if not later or not later.get("cv"):
        return []
    rebuilt = later["pretrain"]["val_metrics"]["balanced_accuracy"]
    shipped = pretrain["val_metrics"]["balanced_accuracy"] if pretrain else None
    seeds = sorted({record["config"].get("seed", "?") for record in later["cv"].values()}, key=str)
    plain = [name for name, record in later["cv"].items()
             if not _levers(record["config"]) and record["config"].get("epochs") == epochs]
    return ["", "### Levers measured after this model was trained",
            f"These rows started from another build of the IDC backbone, which reached IDC val balanced accuracy "
            f"{rebuilt:.3f}" + (f" (the build above: {shipped:.3f})" if shipped is not None else "")
            + "; pretraining is not bit-reproducible across machines. Compare these rows with each other, not "
            "with the table above" + (_baselines(plain) if plain else "")
            + f". Seeds: {', '.join(map(str, seeds))} (a seed sets a row's training draws, and its folds where "
            "slides tie).", "", *cv_table(later["cv"]), *precision_lines(later.get("precision"))]


def precision_lines(records: dict[str, dict] | None) -> list[str]:
    """Later rows whose fold models were exported and scored at fp32 and int8 (``edgehisto cv-precision``)."""
    if not records:
        return []
    lines = ["", "The same folds at the precision that ships (`edgehisto cv-precision`): each fold model exported "
                 "as the bundle's stages are, its int8 calibrated on that fold's training fields only, and its "
                 "held-out fields scored with onnxruntime. Agreement is with the level before it (fp32 with Keras, "
                 "int8 with fp32), the lowest top-1 over folds and the largest |Δp|.", "",
             "| run (start) | level | image balanced acc | slide balanced acc | top-1 agreement | max abs Δp |",
             "|---|---|---|---|---|---|"]
    for name, record in records.items():
        for start, levels in record["summary"].items():
            for level, figures in levels.items():
                image, slide = figures["image"]["balanced_accuracy"], figures["patient"]["balanced_accuracy"]
                agreements = [fold["starts"][start][level]["agreement"] for fold in record["folds"]
                              if "agreement" in fold["starts"].get(start, {}).get(level, {})]
                top1 = f"{min(a['top1'] for a in agreements):.3f}" if agreements else "—"
                dp = f"{max(a['max_abs_dp'] for a in agreements):.4f}" if agreements else "—"
                lines.append(f"| {name} ({start}) | {level} | {spread_text(image)} | {spread_text(slide)} | {top1} | "
                             f"{dp} |")
    return lines


def _baselines(plain: list[str]) -> str:
    if len(plain) == 1:
        return f": {plain[0]} is their baseline, with no lever on"
    return f": {', '.join(plain[:-1])} and {plain[-1]} are their baselines, with no lever on (compare within a seed)"


def cv_target_line(card: dict) -> str:
    """The grouped-CV targets against the best complete row of the recipe table (and of the later rows)."""
    targets = card["target"].get("cv")
    best = _best_row(card["cv"])
    if not targets or best is None:
        return ""
    name, image, slide = best
    met = image["mean"] >= targets["image"] and slide["mean"] >= targets["slide"]
    line = (f"Grouped-CV binary balanced accuracy ≥ {targets['image']:.2f} (image) and ≥ {targets['slide']:.2f} "
            f"(slide vote): the best complete row, {name}, measured {spread_text(image)} and "
            f"{spread_text(slide)}: **{'met' if met else 'not met'}**.")
    later_records = (card.get("later_cv") or {}).get("cv", {})
    later = _best_row(later_records)
    if later:
        line += (f" The best later row, {later[0]}, on its own backbone: {spread_text(later[1])} and "
                 f"{spread_text(later[2])}{_replicates(later_records, later[0])}.")
    measured = (card.get("later_cv") or {}).get("precision")
    if measured:
        return line + (" These are the fold models' Keras fp32 figures; " + ", ".join(measured)
                       + " was also measured at int8 (the table after the later levers).")
    return line + " These are the fold models' Keras fp32 figures; the fold models were not quantised."


def _replicates(records: dict[str, dict], name: str) -> str:
    """The same recipe under other seeds, as a clause: a best row that did not replicate must say so."""
    def recipe(config: dict) -> dict:
        return {k: v for k, v in config.items() if k not in ("seed", "verbose", "eager", "keep_models")}

    mine = recipe(records[name]["config"])
    others = [(other, levels["image"]["balanced_accuracy"]) for other, record in records.items()
              if other != name and recipe(record["config"]) == mine for levels in record["summary"].values()]
    if not others:
        return ""
    return "; the same recipe under another seed: " + ", ".join(
        f"{other} (seed {records[other]['config'].get('seed', '?')}) {spread_text(image)}" for other, image in others)


def _best_row(records: dict[str, dict]) -> tuple[str, dict, dict] | None:
    """(name, image, slide balanced accuracy) of the row with the best image mean over all of its folds."""
    rows = [(name, levels["image"]["balanced_accuracy"], levels["patient"]["balanced_accuracy"])
            for name, record in records.items() for levels in record["summary"].values()
            if levels["image"].get("folds") == record["config"].get("folds")]
    return max(rows, key=lambda row: row[1]["mean"]) if rows else None


def _levers(config: dict) -> list[str]:
    """The levers a CV row had on, by the columns of ``cv_table``."""
    cells = {"field": _cv_field(config) != "squashed", "weighting": _cv_weighting(config) != "none",
             "stain": _cv_stain(config) != "off", "colour": bool(config.get("colour_normalise")),
             "zoom": _cv_zoom(config) != "off"}
    return [name for name, on in cells.items() if on]


def cv_table(records: dict[str, dict]) -> list[str]:
    """One row per CV record and start: its levers, then mean ± sd over folds."""
    lines = ["| recipe (backbone start) | field | weighting | stain jitter | colour normalisation | "
             "magnification zoom | epochs | seed | folds run | image balanced acc | sensitivity | specificity | "
             "slide balanced acc |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, record in records.items():
        c = record["config"]
        for start, levels in record["summary"].items():
            image, patient = levels["image"], levels["patient"]
            lines.append(f"| {name} ({start}) | {_cv_field(c)} | {_cv_weighting(c)} | {_cv_stain(c)} | "
                         f"{'on' if c.get('colour_normalise') else 'off'} | {_cv_zoom(c)} | {c.get('epochs', '?')} | "
                         f"{c.get('seed', '?')} | "
                         f"{image.get('folds', '?')} | "
                         f"{spread_text(image['balanced_accuracy'])} | "
                         f"{image['sensitivity']['mean']:.3f} | {image['specificity']['mean']:.3f} | "
                         f"{spread_text(patient['balanced_accuracy'])} |")
    return lines


def _cv_field(config: dict) -> str:
    """How a CV row fed fields to the model; records older than the lever were all squashed."""
    if config.get("field_geometry", "squash") == "squash":
        return "squashed"
    return f"fixed scale, {config.get('eval_crops', '?')} crops"


def _cv_stain(config: dict) -> str:
    jitter = [name for name, key in (("HSV", "stain_augment"), ("HED", "hed_augment")) if config.get(key)]
    return " + ".join(jitter) or "off"


def _cv_weighting(config: dict) -> str:
    if config.get("slide_balance"):
        return "slide balance"
    return "class weights" if config.get("class_weights") else "none"


def _cv_zoom(config: dict) -> str:
    zoom = config.get("magnification_zoom", 1.0)
    return f"up to {zoom:g}x" if zoom > 1 else "off"
