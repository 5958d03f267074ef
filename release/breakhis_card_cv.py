"""The BreaKHis model card's cross-validation sections: the recipe table, later levers, probes, the CV target."""

from __future__ import annotations


def probe_lines(probes: dict | None) -> list[str]:
    """The frozen-feature probes' table, when the card has them."""
    if not probes:
        return []
    lines = ["", f"Frozen features, logistic regression, the same grouped {probes['folds']}-fold CV "
                 "(`edgehisto train breakhis-probe`): what a start's features carry before any fine-tuning.", "",
             "| features | held-out binary balanced acc (mean ± sd) |", "|---|---|"]
    names = {"pretrained_frozen": "IDC-pretrained DenseNet121, frozen", "random_frozen": "random DenseNet121, frozen",
             "colour_statistics": "per-channel colour mean and std (6 numbers)"}
    lines += [f"| {names.get(k, k)} | {v['mean']:.3f} ± {v['sd']:.3f} |" for k, v in probes["probes"].items()]
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


def later_cv_lines(later: dict | None, pretrain: dict | None) -> list[str]:
    """Levers measured after this model was trained, each against a baseline on the backbone they shared."""
    if not later or not later.get("cv"):
        return []
    rebuilt = later["pretrain"]["val_metrics"]["balanced_accuracy"]
    shipped = pretrain["val_metrics"]["balanced_accuracy"] if pretrain else None
    seeds = sorted({record["config"]["seed"] for record in later["cv"].values()})
    return ["", "### Levers measured after this model was trained",
            "The IDC backbone was rebuilt for these rows with the same command on another machine; pretraining is "
            f"not bit-reproducible across machines, and the rebuilt one reached IDC val balanced accuracy "
            f"{rebuilt:.3f}" + (f" against {shipped:.3f} for the one above" if shipped is not None else "")
            + ". Compare these rows with each other, not with the table above: the plain row (squashed, no "
            f"weighting, no jitter, no zoom) is their baseline. Seeds {', '.join(map(str, seeds))}; seed 1 "
            "trains every fold from other random draws. No row here is adopted unless it beats its baseline by "
            "more than the spread over folds.", "", *cv_table(later["cv"])]


def cv_target_line(card: dict) -> str:
    """The grouped-CV targets against the best complete row on the card."""
    targets = card["target"].get("cv")
    rows = [(name, levels) for records in (card["cv"], (card.get("later_cv") or {}).get("cv", {}))
            for name, record in records.items() for levels in record["summary"].values()
            if levels["image"].get("folds") == record["config"]["folds"]]
    if not targets or not rows:
        return ""
    name, best = max(rows, key=lambda row: row[1]["image"]["balanced_accuracy"]["mean"])
    image, slide = best["image"]["balanced_accuracy"], best["patient"]["balanced_accuracy"]
    met = image["mean"] >= targets["image"] and slide["mean"] >= targets["slide"]
    return (f"Grouped-CV binary balanced accuracy ≥ {targets['image']:.2f} (image) and ≥ {targets['slide']:.2f} (slide "
            f"vote): the best complete row, {name}, measured {image['mean']:.3f} ± {image['sd']:.3f} and "
            f"{slide['mean']:.3f} ± {slide['sd']:.3f}: **{'met' if met else 'not met'}**. These are the fold models' "
            "Keras fp32 figures; int8 labels agree with fp32 on the held-out fields as stated above.")


def cv_table(records: dict[str, dict]) -> list[str]:
    """One row per CV record and start: its levers, then mean ± sd over folds."""
    lines = ["| recipe (backbone start) | field | weighting | stain jitter | colour normalisation | "
             "magnification zoom | seed | folds run | image balanced acc | sensitivity | specificity | "
             "slide balanced acc |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, record in records.items():
        c = record["config"]
        for start, levels in record["summary"].items():
            image, patient = levels["image"], levels["patient"]
            lines.append(f"| {name} ({start}) | {_cv_field(c)} | {_cv_weighting(c)} | {_cv_stain(c)} | "
                         f"{'on' if c.get('colour_normalise') else 'off'} | {_cv_zoom(c)} | {c.get('seed', '?')} | "
                         f"{image.get('folds', '?')} | "
                         f"{image['balanced_accuracy']['mean']:.3f} ± {image['balanced_accuracy']['sd']:.3f} | "
                         f"{image['sensitivity']['mean']:.3f} | {image['specificity']['mean']:.3f} | "
                         f"{patient['balanced_accuracy']['mean']:.3f} ± {patient['balanced_accuracy']['sd']:.3f} |")
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
