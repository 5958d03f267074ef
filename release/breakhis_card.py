"""The BreaKHis model card as Markdown, and its one-line caveat: pure functions of the card's data."""

from __future__ import annotations

from edgehisto.bundle.manifest import PRECISIONS
from edgehisto.datasets.tasks import BREAKHIS, END_TO_END_CLASSES
from edgehisto.release.breakhis_card_cv import cv_lines, cv_target_line, later_cv_lines, probe_lines

CLASSES = END_TO_END_CLASSES["breakhis"]


def _stopping(cfg: dict) -> str:
    if cfg["patience"] >= cfg["epochs"]:
        return (f"a fixed {cfg['epochs']} epochs, as the grouped CV validated (EarlyStopping's patience "
                f"{cfg['patience']} never stops it: the val side is too small to stop on), ReduceLROnPlateau on "
                "val loss")
    return (f"up to {cfg['epochs']} epochs, ReduceLROnPlateau and EarlyStopping (val_loss, patience "
            f"{cfg['patience']}, best weights restored)")


def pct(value: float | None) -> str:
    """A figure to three decimals, or a dash where it cannot be measured."""
    return "—" if value is None else f"{value:.3f}"


def _binary_row(name: str, m: dict) -> str:
    (tn, fp), (fn, tp) = m["confusion_matrix"]
    return (f"| {name} | {m['n']} | {pct(m['accuracy'])} | {pct(m['balanced_accuracy'])} | "
            f"{pct(m['sensitivity'])} | {pct(m['specificity'])} | TN {tn}, FP {fp}, FN {fn}, TP {tp} |")


def render(card: dict) -> str:
    """The card as Markdown."""
    cfg, split, test, val = card["config"], card["split"], card["test"], card["val"]
    int8 = test["int8"]["image"]["binary"]["balanced_accuracy"]
    target = card["target"]["binary_balanced_accuracy_int8"]
    arch = ("the seed's three-model hierarchy: a binary DenseNet121 routes each image to a benign-subtype "
            "or a malignant-subtype DenseNet121" if card["arch"] == "hierarchy" else
            "the multitask variant: one DenseNet121 backbone with three seed heads (binary, benign subtype, "
            "malignant subtype); the subtype losses are masked by the true binary label")
    lines = [
        "# Model card: BreaKHis DenseNet121 (edgehisto embedded model `breakhis`)", "",
        "**A research and demonstration tool, not a diagnostic device.** It must not be used to make or "
        "support clinical decisions.", "",
        "## Data provenance and terms",
        "- BreaKHis v1 (Spanhol et al., IEEE TBME 2016), H&E breast tumour images, 700x460 at 40-400X. The "
        "dataset's authors distribute it **for research use**; this model inherits that restriction. No image "
        "of it ships in this package (the on-device golden set is synthetic).",
        f"- Used here: {card['data']['images']} fields of {sum(len(f) for f in card['patient_folders'].values())} "
        f"patient folders and {sum(len(g) for g in split['groups'].values())} slide ids from `../shared/data/breakhis` "
        "(`real/`: 100X fields downscaled by 2; `more/`: 200X fields published squashed to 224x224 "
        f"({card['data']['squashed_224']} fields) and a few 40-400X fields downscaled by 2). Fields per "
        "magnification: " + ", ".join(f"{m}X {n}" for m, n in card["data"]["magnifications"].items())
        + ". The runtime accepts full-size fields alike.",
        f"- Patient-held-out split ({split['method']}, key `{split['key']}`: the numeric slide id, so folders "
        f"that share a slide stay together; stratified by subtype as far as patients allow; seed {split['seed']}):",
    ]
    for side in ("train", "val", "test"):
        lines.append(f"  - {side} ({card['images'][side]} images, slide ids {', '.join(split['groups'][side])}): "
                     f"{', '.join(card['patient_folders'][side])}")
    lines += [f"- Subtypes with no test patient: {', '.join(test['subtypes_without_patient']) or 'none'}; "
              f"with no val patient: {', '.join(val['subtypes_without_patient']) or 'none'}. Their held-out "
              "recall cannot be measured on this split.", "",
              "## Preprocessing (from the bundle manifest)"]
    from edgehisto.release.idc_card import describe_preprocess

    lines += [describe_preprocess(card["preprocess"]), "", "## Architecture, start and training",
              f"Model: {arch} ({sum(card['n_params'].values()):,} parameters), "
              f"{card['preprocess']['input_size'][1]}x{card['preprocess']['input_size'][0]} whole-image input, the "
              "seed's head (GAP, Dense64-ReLU (L2), BN, Dropout 0.4, Dense + softmax).",
              f"Recipe: Adam {cfg['learning_rate']}, batch {cfg['batch_size']}, " + _stopping(cfg)
              + "; flips, rotation ±10°, zoom 10%, contrast 10%"
              + ("; per-image H&E colour jitter" if cfg.get("stain_augment") else "")
              + "; balanced class weights on the subtype stages"
              + (" and on the binary stage" if cfg.get("balance_binary") else "") + f"; seed {cfg['seed']}."]
    pre = card["pretrain"]
    pretrained = bool(cfg.get("weights"))
    lines.append("Start: **in-domain pretraining** (the IDC-pretrained backbone below), then every layer fine-tuned."
                 if pretrained else "Start: **from scratch** (random initialisation), chosen by the grouped CV below.")
    if pre:
        pm = pre["val_metrics"]
        lines.append(f"In-domain pretraining (no ImageNet weights can be downloaded here): DenseNet121 with the seed's "
                     f"head trained on {pre.get('n_patches', 'the')} real IDC patches at "
                     f"{pre['config']['input_size']}x{pre['config']['input_size']} (about the microns per pixel of "
                     f"a 100X field resized to 128) for {pre['config']['epochs']} epochs with H&E colour jitter; on "
                     f"its held-out IDC patients it reached balanced accuracy {pm['balanced_accuracy']:.3f}"
                     + ("." if pretrained else "; this model does not use it."))
    lines += cv_lines(card["cv"])
    lines += later_cv_lines(card.get("later_cv"), pre, _recipe_config(card).get("epochs"))
    lines += probe_lines(card.get("probes"))
    lines += ["", "## What this bundle holds, and why",
              f"{card['shipped_mb']} MB: {len(card['onnx_files'])} ONNX files ({', '.join(card['onnx_files'])}): "
              "the backbone in fp32 and int8 (QDQ, per-channel; the manifest's quantization records the settings), "
              "the head and the exact Grad-CAM "
              "gradient graph of each stage; a synthetic golden set for `edgehisto verify`; this card and its "
              "confusion matrices. Both precisions ship so that `verify` checks fp32 against the Keras "
              "reference's outputs and int8 against the exporting machine's, on the device. The Keras reference "
              "and TFLite files stay in the development bundle (listed with their sha256). The choice among "
              "candidates, and why, is below."]
    lines += ["", "## Held-out test patients (onnxruntime)", "",
              "| level / precision | n | accuracy | balanced acc | sensitivity (malignant) | specificity | confusion |",
              "|---|---|---|---|---|---|---|"]
    for precision in PRECISIONS:
        lines.append(_binary_row(f"image, {precision}", test[precision]["image"]["binary"]))
        lines.append(_binary_row(f"patient (majority vote), {precision}", test[precision]["patient"]["binary"]))
    lines += ["", "Per magnification (test fields, image level):", "",
              "| precision | magnification | n | binary balanced acc | sensitivity | specificity | routed accuracy |",
              "|---|---|---|---|---|---|---|"]
    for precision in PRECISIONS:
        for mag, figures in test[precision]["by_magnification"].items():
            b = figures["binary"]
            lines.append(f"| {precision} | {mag}X | {b['n']} | {pct(b['balanced_accuracy'])} | "
                         f"{pct(b['sensitivity'])} | {pct(b['specificity'])} | {figures['routed_accuracy']:.3f} |")
    lines += ["", "Routed 8-class (binary, then the subtype stage it routes to):", "",
              "| precision | image accuracy | image balanced acc | patient accuracy (vote) | "
              + " | ".join(f"recall {c}" for c in CLASSES) + " |",
              "|---|---|---|---|" + "---|" * len(CLASSES)]
    for precision in PRECISIONS:
        routed = test[precision]["image"]["routed"]
        support = {c: routed["per_class"][c]["support"] for c in CLASSES}
        recalls = " | ".join(pct(routed["per_class"][c]["recall"]) if support[c] else "—" for c in CLASSES)
        lines.append(f"| {precision} | {routed['accuracy']:.3f} | {routed['balanced_accuracy']:.3f} | "
                     f"{test[precision]['patient']['routed_accuracy']:.3f} | {recalls} |")
    lines += branch_lines(test, card.get("seed_subtype_accuracy"), card.get("parity"))
    lines += agreement_lines(card.get("parity"))
    lines += ["", "Confusion matrices (test patients): `card/held_out_binary_{fp32,int8}.png`, "
              "`card/held_out_routed_{fp32,int8}.png`. "
              "The `evaluate` report of the test patients, with Grad-CAM panels of correct and incorrect "
              "predictions per class and stage, is not shipped: its panels are BreaKHis images, which stay out of "
              "the repository and the wheel. `make demo` or `edgehisto evaluate breakhis "
              "../shared/data/breakhis/real --out reports/breakhis` writes it where the data is.",
              "Per-patient votes (int8): " + "; ".join(
                  f"{n}: true {v['true']}, voted {v['binary']} / {v['routed']}"
                  for n, v in test["int8"]["patient"]["votes"].items()) + ".", "",
              "Val patients (used to choose among candidates), int8: binary balanced accuracy "
              f"{pct(val['int8']['image']['binary']['balanced_accuracy'])}, routed 8-class accuracy "
              f"{val['int8']['image']['routed']['accuracy']:.3f}.", "",
              "## Target", _target_line(int8, target, len(test["patients"])), _collapse_line(test["int8"]), "",
              cv_target_line(card), "",
              "## Candidates (chosen on the val patients)", "",
              f"Eligible: the files an installed copy ships (ONNX fp32 and int8, golden set, card) fit "
              f"{card['budget_mb']:.0f} MB, so that the wheel stays under 65 MB beside the IDC model. "
              "Among the eligible, the best val binary balanced accuracy wins. Test columns are reported, "
              "not used to choose.", "",
              "| candidate | start | shipped MB | eligible | val binary bal. acc | val routed acc "
              "| test binary bal. acc | test routed acc |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {c['name']} | {c['weights'] and 'IDC-pretrained' or 'scratch'} | {c['shipped_mb']} | "
              f"{'yes' if c['fits'] else 'no'} | {pct(c['val_binary_balanced_accuracy'])} | "
              f"{c['val_routed_accuracy']:.3f} | {pct(c['test_binary_balanced_accuracy'])} | "
              f"{c['test_routed_accuracy']:.3f} |" for c in card["comparison"]]
    lines += ["", "All figures in this table are int8, image level."]
    lines += ["", "## Intended use and limitations",
              "- Intended: research and demonstration of edge inference and Grad-CAM on BreaKHis-like fields.",
              "- Not intended: diagnosis, screening, triage or any clinical use.",
              f"- {sum(len(g) for g in split['groups'].values())} slide ids of one institution; the thin subtypes "
              "(LC, PT, TA) have two to five slides each, so per-subtype recall rests on one or two held-out "
              "patients, or cannot be measured at all on this split.",
              "- Magnifications are unevenly represented (above); the figures per magnification below say how "
              "it fares on each held-out magnification that the test side holds. The input guard accepts any "
              "BreaKHis-sized field; it cannot tell magnifications apart.",
              f"- Grad-CAM maps are {card['gradcam_shape'][0]}x{card['gradcam_shape'][1]} at this input size "
              "(DenseNet121's last block): they point at a region, they do not outline a lesion.",
              *unknown_lines(card),
              "", "Reproduce: `make breakhis-model` (needs `../shared/data`). Seeds are fixed, but TensorFlow's CPU "
              "kernels are not bitwise deterministic, so a retrain lands close to, not exactly on, these numbers."]
    return "\n".join(lines)


def caveat(card: dict) -> str | None:
    """One line the kiosk shows beside every result: the held-out target missed, or a subtype stage no better
    than a guess on the test fields (the export's parity report, each stage alone)."""
    binary = card["test"]["int8"]["image"]["binary"]
    target = card["target"]["binary_balanced_accuracy_int8"]
    if binary["sensitivity"] == 0 or binary["specificity"] == 0:
        called = "benign" if binary["sensitivity"] == 0 else "malignant"
        return f"on patients it never saw it calls every field {called}: it does not generalise"
    clauses = []
    measured = binary["balanced_accuracy"]
    if measured is None or measured < target:
        shown = "not measurable" if measured is None else f"{measured:.2f}"
        clauses.append(f"on {len(card['test']['patients'])} slides it never saw, benign/malignant balanced accuracy "
                       f"is {shown} (int8), below the {target:.2f} target: treat a label as a hint")
    reported = (card.get("parity") or {}).get("reported", {})
    for branch in ("benign", "malignant"):
        names = BREAKHIS.stages[f"{branch}_subtype"]
        alone = reported.get(f"{branch}_subtype", {}).get("onnx_int8_accuracy")
        if alone is not None and alone < 1 / len(names):
            clauses.append(f"its {branch} subtype is right on {alone:.0%} of {branch} test fields, worse than a "
                           f"guess among {len(names)}: ignore it")
    return "; ".join(clauses) or None


def _collapse_line(side: dict) -> str:
    binary = side["image"]["binary"]
    if binary["sensitivity"] == 0 or binary["specificity"] == 0:
        called = "benign" if binary["sensitivity"] == 0 else "malignant"
        return (f"Why: on these patients the model calls every image {called}: it has not learned a rule "
                "that transfers to patients it never saw. Treat this model as a demonstration of the pipeline, "
                "not as a classifier.")
    return ""


def _target_line(measured: float | None, target: float, n_patients: int) -> str:
    if measured is None:
        return (f"Held-out-patient binary balanced accuracy ≥ {target}, int8: **not measurable** on this split "
                "(its test patients hold one class only); see the grouped-CV figures.")
    return (f"Held-out-patient binary balanced accuracy ≥ {target}, int8: measured {measured:.3f} on the test "
            f"patients ({measured - target:+.3f}): **{'met' if measured >= target else 'not met'}**. The test side "
            f"holds {n_patients} patients, so one patient moves this figure by a lot; the grouped-CV spread "
            "above is the better guide to what to expect.")


def branch_lines(test: dict, seed: dict | None, parity: dict | None) -> list[str]:
    """Subtype accuracy per branch, int8: the subtype stage alone (as the seed measured it) and routed."""
    reported = (parity or {}).get("reported", {})
    lines = ["", "Subtypes per branch, int8, test fields. *Stage alone*: the branch's subtype stage on every field "
             "of that branch (the export's parity report), the figure the seed's 44% (benign) and 15% (malignant) "
             "are. *Routed*: right end to end, binary stage first.", "",
             "| branch | fields | stage alone | the seed | difference | routed |", "|---|---|---|---|---|---|"]
    matrix = test["int8"]["image"]["routed"]["confusion_matrix"]
    for branch in ("benign", "malignant"):
        members = [CLASSES.index(name) for name in BREAKHIS.stages[f"{branch}_subtype"]]
        fields = sum(sum(matrix[i]) for i in members)
        right = sum(matrix[i][i] for i in members)
        alone = reported.get(f"{branch}_subtype", {}).get("onnx_int8_accuracy")
        expected = (seed or {}).get(branch)
        difference = "—" if alone is None or expected is None else f"{100 * (alone - expected):+.1f} points"
        lines.append(f"| {branch} | {fields} | {'—' if alone is None else f'{alone:.1%}'} | "
                     f"{'—' if expected is None else f'{expected:.0%}'} | {difference} | {_share(right, fields)} |")
    return lines


def agreement_lines(parity: dict | None) -> list[str]:
    """What the export's parity gates measured for int8 against fp32 on the held-out fields."""
    gates = (parity or {}).get("gates")
    if not gates:
        return []
    values = {(g["stage"], g["name"]): g for g in gates}
    top1 = [(stage, g["value"]) for (stage, name), g in values.items() if name == "onnx_int8_top1_agreement"]
    routed = values.get(("routed", "onnx_int8_label_agreement"))
    cams = [g["value"] for (stage, name), g in values.items() if name == "gradcam_int8_mean_pearson"]
    lowest = {stage: figures["gradcam_int8_min_pearson"] for stage, figures in parity.get("reported", {}).items()
              if "gradcam_int8_min_pearson" in figures}
    line = ("Int8 against fp32 on the held-out fields (the export's parity gates, `parity.json`): top-1 agreement "
            + ", ".join(f"{stage.replace('_', ' ')} {value:.3f}" for stage, value in top1))
    if routed:
        line += f", routed 8-class labels {routed['value']:.3f} (gate ≥ {routed['threshold']})"
    if cams:
        line += f"; int8 Grad-CAM Pearson r against fp32, mean per stage {min(cams):.3f}-{max(cams):.3f}"
    if lowest:
        line += (", lowest single field " + ", ".join(f"{s.replace('_', ' ')} {v:.3f}" for s, v in lowest.items())
                 + " (the gate is on the mean)")
    verdict = "every gate passed" if all(g["passed"] for g in gates) else "**a gate failed**"
    return ["", f"{line}; {verdict}."]


def unknown_lines(card: dict) -> list[str]:
    """What the measurements on this card cannot tell."""
    test = card["test"]
    thin = [f"{m}X (n={f['binary']['n']})" for m, f in test["int8"]["by_magnification"].items()
            if f["binary"]["n"] < 20]
    missing = test["subtypes_without_patient"]
    lines = ["", "## What is still unknown",
             "- Full-size fields: every field it was trained and tested on was downscaled by 2 or squashed to "
             "224x224. It accepts a 700x460 original, but its accuracy on one is not measured: none was available.",
             "- Other laboratories, scanners and stains: all slides come from one institution, so how it fares "
             "on another lab's staining is not measured.",
             "- Whether its confidence means what it says: calibration was not measured."]
    if missing:
        lines.append(f"- Recall of {', '.join(missing)}: the test side holds no patient of "
                     + ("it." if len(missing) == 1 else "them."))
    if thin:
        lines.append(f"- Magnifications with few test fields ({', '.join(thin)}): their figures above rest on "
                     "too few fields to mean much.")
    folds = _recipe_config(card).get("folds")
    if folds:
        lines.append("- Whether the levers that moved the CV mean by less than its spread over folds help at all: "
                     f"{folds} folds cannot tell.")
    return lines


def _recipe_config(card: dict) -> dict:
    """The CV config of the recipe table (its rows share folds and epochs), or {} without one."""
    return next(iter(card["cv"].values()), {}).get("config", {})


def _share(numerator: int, denominator: int) -> str:
    return f"{numerator / denominator:.1%} ({numerator}/{denominator})" if denominator else "—"
