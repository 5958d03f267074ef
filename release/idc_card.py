"""The model card of an IDC bundle: held-out-patient metrics measured with the runtime, plus
provenance, recipe, intended use and limitations. Written as MODEL_CARD.md + model_card.json.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgehisto.bundle.manifest import PRECISIONS, load_bundle
from edgehisto.datasets.run_info import RunInfo
from edgehisto.datasets.splits import read_split
from edgehisto.metrics.scores import binary_metrics
from edgehisto.runtime.classifier import Classifier

_LOG = logging.getLogger(__name__)  # default progress sink; the CLI passes its own

TARGET = {"balanced_accuracy": 0.90, "positive_recall": 0.88}
# Published patient-level balanced accuracy on this dataset, to beat (issue 22's figures).
PUBLISHED = {"Janowczyk & Madabhushi 2016": 0.85, "later work": 0.89}
# The IDC patients whose copies come from iotJumpway/Intel-Examples (MIT); the rest from the CC0 dataset.
MIT_PATIENTS = {"8863", "8865", "8867", "8913", "8918", "8950", "8951", "8955", "8956", "8957", "8959", "8974",
                "9022", "9029", "9036", "9075"}


def side_tiles(run_dir: Path, side: str) -> tuple[list[str], np.ndarray, list[str]]:
    """(relpaths, labels, patients) of one split side of a run."""
    rows = [r for r in read_split(run_dir) if r["side"] == side]
    return [r["relpath"] for r in rows], np.array([r["label"] for r in rows]), sorted({r["group"] for r in rows})


def positive_probabilities(classifier: Classifier, paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """(P(IDC-positive) of each tile the runtime classifies, which tiles those are).

    The runtime refuses a slide-edge sliver under its minimum side (a 50x1 patch is padding, not tissue),
    as ``classify`` does; such tiles are left out of the figures and counted by the card. Any other
    failure raises: held-out data must load.
    """
    results = classifier.classify_paths(paths)
    failed = [r for r in results if not r.ok and "minimum side" not in r.error]
    if failed:
        raise ValueError(f"{len(failed)} held-out tiles failed, first: {failed[0].path}: {failed[0].error}")
    kept = np.array([r.ok for r in results])
    return np.array([r.stages[0].probabilities["IDC-positive"] for r in results if r.ok]), kept


def held_out_metrics(bundle_dir: Path, run_dir: Path, data_dir: Path, allow_failed_parity: bool = False) -> dict:
    """Metrics per split side (val, test) and precision, measured with the onnxruntime runtime.

    Each side also gets the per-patient spread (``per_patient``) and the int8/fp32 label agreement.
    """
    bundle = load_bundle(bundle_dir)
    out = {}
    for side in ("val", "test"):
        relpaths, labels, patients = side_tiles(run_dir, side)
        tile_patients = np.array([r["group"] for r in read_split(run_dir) if r["side"] == side])
        out[side] = {"patients": patients}
        predicted = {}
        for precision in PRECISIONS:
            probs, kept = positive_probabilities(Classifier(bundle, precision, allow_failed_parity=allow_failed_parity),
                                                 [data_dir / p for p in relpaths])
            out[side][precision] = binary_metrics(labels[kept], probs)
            out[side][precision]["per_patient"] = per_patient_spread(labels[kept], probs, tile_patients[kept])
            out[side][precision]["refused_slivers"] = int((~kept).sum())
            predicted[precision] = probs >= 0.5
        out[side]["int8_fp32_agreement"] = float(np.mean(predicted["int8"] == predicted["fp32"]))
    return out


def per_patient_spread(labels: np.ndarray, p_positive: np.ndarray, patients: np.ndarray) -> dict:
    """The distribution of per-patient balanced accuracy (patients holding both classes) and accuracy (all)."""
    balanced, accuracy = [], []
    for patient in sorted(set(patients)):
        rows = patients == patient
        truth, predicted = labels[rows], p_positive[rows] >= 0.5
        accuracy.append(float(np.mean(truth == predicted)))
        if len(set(truth)) == 2:
            balanced.append(float(np.mean([np.mean(predicted[truth == c] == c) for c in (0, 1)])))

    def quartiles(values: list[float]) -> dict:
        if not values:
            return {"n": 0}
        q = np.percentile(values, [0, 25, 50, 75, 100])
        return {"n": len(values), **{k: float(v) for k, v in zip(("min", "q1", "median", "q3", "max"), q, strict=True)}}

    return {"balanced_accuracy": quartiles(balanced), "accuracy": quartiles(accuracy)}


def best_threshold(y_true: np.ndarray, p_positive: np.ndarray) -> float:
    """The threshold maximising balanced accuracy (Youden's J) on the given tiles."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(y_true, p_positive)
    return float(thresholds[int(np.argmax(tpr - fpr))])


def write_model_card(bundle_dir: Path, run_dir: Path, data_dir: Path, comparison: list[dict],
                     log: Callable[[str], None] = _LOG.info) -> dict:
    """Measure, then write ``MODEL_CARD.md`` and ``model_card.json`` into the bundle."""
    run = RunInfo.load(run_dir)
    log("measuring held-out patients with the runtime (fp32 and int8)")
    metrics = held_out_metrics(bundle_dir, run_dir, data_dir)
    relpaths, labels, _ = side_tiles(run_dir, "val")
    val_probs, kept = positive_probabilities(Classifier(bundle_dir, "int8"), [data_dir / p for p in relpaths])
    threshold = best_threshold(labels[kept], val_probs)
    relpaths, labels, _ = side_tiles(run_dir, "test")
    test_probs, kept = positive_probabilities(Classifier(bundle_dir, "int8"), [data_dir / p for p in relpaths])
    tuned = binary_metrics(labels[kept], test_probs, threshold)
    card = {
        "bundle": Path(bundle_dir).name, "config": run.config, "n_params": run.n_params,
        "epochs_run": run.epochs_run, "split": json.loads((run_dir / "split.json").read_text()),
        "preprocess": run.preprocess.to_dict(), "metrics": metrics, "target": TARGET,
        "target_met_int8_test": bool(metrics["test"]["int8"]["balanced_accuracy"] >= TARGET["balanced_accuracy"]
                                     and metrics["test"]["int8"]["sensitivity"] >= TARGET["positive_recall"]),
        "val_tuned_threshold": {"threshold": threshold, "test_int8_at_threshold": tuned},
        # Candidate rows without their working directories (machine paths).
        "comparison": [{k: v for k, v in row.items() if k not in ("run_dir", "bundle_dir")} for row in comparison],
        "versions": run.provenance["versions"],
    }
    test8 = metrics["test"]["int8"]
    # One line the kiosk shows beside every result when the card's own target is missed.
    card["caveat"] = None if card["target_met_int8_test"] else (
        f"on {len(metrics['test']['patients'])} patients it never saw, balanced accuracy "
        f"{test8['balanced_accuracy']:.2f} and IDC-positive recall {test8['sensitivity']:.2f} (int8), below the "
        f"{TARGET['balanced_accuracy']:.2f} / {TARGET['positive_recall']:.2f} target: treat a label as a hint")
    (Path(bundle_dir) / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    (Path(bundle_dir) / "MODEL_CARD.md").write_text(render(card) + "\n")
    return card


def _row(name: str, m: dict) -> str:
    cm = m["confusion_matrix"]
    auc = "—" if m["roc_auc"] is None else f"{m['roc_auc']:.3f}"
    return (f"| {name} | {m['n']} | {m['accuracy']:.3f} | {m['balanced_accuracy']:.3f} | {m['sensitivity']:.3f} | "
            f"{m['specificity']:.3f} | {m['f1']:.3f} | {auc} | "
            f"TN {cm[0][0]}, FP {cm[0][1]}, FN {cm[1][0]}, TP {cm[1][1]} |")


def describe_preprocess(spec: dict) -> str:
    """The manifest's preprocessing spec in one sentence (nothing restated from elsewhere)."""
    steps = ["Decode to 8-bit RGB"]
    if spec["pad_to"]:
        steps.append(f"pad images smaller than {spec['pad_to'][1]}x{spec['pad_to'][0]} bottom/right with "
                     f"value {spec['pad_value']}")
    steps.append(f"resize to {spec['input_size'][1]}x{spec['input_size'][0]} ({spec['resize_method']})")
    steps.append(f"multiply by {spec['scale']:.6g}" + (" (1/255)" if abs(spec["scale"] - 1 / 255) < 1e-12 else ""))
    if list(spec["mean"]) != [0.0, 0.0, 0.0] or list(spec["std"]) != [1.0, 1.0, 1.0]:
        steps.append(f"subtract mean {tuple(spec['mean'])} and divide by std {tuple(spec['std'])} per channel")
    return "; ".join(steps) + f". {spec['layout']} {spec['dtype']}."


def _on(flag: bool | None) -> str:
    return "?" if flag is None else ("on" if flag else "off")


def _spread(q: dict, what: str, over: str) -> str:
    if not q.get("n"):
        return f"{what}: no {over}"
    return (f"{what} over {q['n']} {over}: median {q['median']:.3f}, quartiles {q['q1']:.3f}-{q['q3']:.3f}, "
            f"range {q['min']:.3f}-{q['max']:.3f}")


def render(card: dict) -> str:
    """The card as Markdown."""
    cfg, split, m = card["config"], card["split"], card["metrics"]
    test8 = m["test"]["int8"]
    lines = [
        "# Model card: IDC CNN (edgehisto default model)", "",
        "**A research and demonstration tool, not a diagnostic device.** It must not be used to make or "
        "support clinical decisions.", "",
        "## Data provenance",
        "- Public dataset: *Breast Histopathology Images* (IDC_regular_ps50_idx5; Janowczyk & Madabhushi 2016, "
        "from Cruz-Roa et al. 2014): 50x50 RGB H&E patches from whole-slide images, labelled IDC-negative (0) "
        "or IDC-positive (1).",
        f"- Used: {sum(sum(split['class_counts'][k].values()) for k in ('train', 'val', 'test')):,} patches of "
        f"{sum(len(split['groups'][k]) for k in ('train', 'val', 'test'))} patients (`../shared/data/idc`). "
        "The 16 large patients' copies come from iotJumpway/Intel-Examples (IDC-Classification; MIT, (c) 2018 "
        "Adam Milton-Barker), the others from the dataset as published on Kaggle (CC0).",
        f"- Patient-held-out split ({split['method']}, key `{split['key']}`, seed {split['seed']}): "
        + "; ".join(f"{side}: {len(split['groups'][side])} patients "
                    f"(class 0: {split['class_counts'][side].get('0', 0)}, "
                    f"class 1: {split['class_counts'][side].get('1', 0)} patches)"
                    for side in ("train", "val", "test")) + ". The patient lists are in `model_card.json`.",
        "- Shipped real tissue: the 16 golden tiles that `edgehisto verify` replays are real patches of training "
        "patients (their origins are listed in the manifest's `golden.origins` and in `golden/SOURCES.md`).", "",
        "## Preprocessing (from the bundle manifest)",
        describe_preprocess(card["preprocess"]), "",
        "## Architecture and training",
        f"The seed's 27-layer CNN ({card['n_params']:,} parameters at this input size): Conv32/64/128 and "
        "SeparableConv256 blocks (BN, ReLU, max-pool), GAP, Dropout, Dense128-BN-ReLU-Dropout, "
        "Dense64-BN-ReLU, Dense1 + sigmoid; L2 on kernels; BatchNorm momentum 0.9 (see `train/architectures.py`).",
        f"Recipe: Adam {cfg['learning_rate']}, batch {cfg['batch_size']}, binary cross-entropy, up to "
        f"{cfg['epochs']} epochs (ran {card['epochs_run']}), ReduceLROnPlateau, EarlyStopping(val_loss, "
        f"patience {cfg['patience']}, best weights restored); augmentation: rotation ±20°, zoom 20%, shifts 10%, "
        f"brightness 0.8–1.2, horizontal flip{', plus per-image H&E colour jitter' if cfg['stain_augment'] else ''}; "
        f"class weights {'on' if cfg['class_weights'] else 'off'}; seed {cfg['seed']}.", "",
        "## Metrics on held-out patients (onnxruntime, decision threshold 0.5)", "",
        "| split / precision | n | accuracy | balanced acc | sensitivity | specificity | F1 | ROC AUC | confusion |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for side in ("test", "val"):
        lines += [_row(f"{side} ({len(m[side]['patients'])} patients) {p}", m[side][p]) for p in PRECISIONS]
    lines += ["", "Per-patient spread on the test patients (int8): "
              + _spread(m["test"]["int8"]["per_patient"]["balanced_accuracy"], "balanced accuracy",
                        "patients holding both classes")
              + "; " + _spread(m["test"]["int8"]["per_patient"]["accuracy"], "accuracy", "all patients") + ".",
              f"int8 and fp32 give the same label on {m['test']['int8_fp32_agreement']:.1%} of the test tiles "
              f"and {m['val']['int8_fp32_agreement']:.1%} of the val tiles.",
              f"Not counted: {m['test']['int8']['refused_slivers']} test and {m['val']['int8']['refused_slivers']} "
              "val patches that are slide-edge slivers under the runtime's minimum side (e.g. 50x1); `classify` "
              "refuses them too."]
    tuned = card["val_tuned_threshold"]
    met = card["target_met_int8_test"]
    lines += [
        "", "## Target",
        f"Target: balanced accuracy ≥ {card['target']['balanced_accuracy']} and IDC-positive recall ≥ "
        f"{card['target']['positive_recall']} on held-out patients, int8. Measured on the test patients: "
        f"balanced accuracy {test8['balanced_accuracy']:.3f} "
        f"({test8['balanced_accuracy'] - card['target']['balanced_accuracy']:+.3f}), "
        f"recall {test8['sensitivity']:.3f} ({test8['sensitivity'] - card['target']['positive_recall']:+.3f}): "
        f"**{'met' if met else 'not met'}**.",
        "Published patient-level balanced accuracy on this dataset: "
        + "; ".join(f"{name} about {value:.2f} (this model {test8['balanced_accuracy'] - value:+.3f})"
                    for name, value in PUBLISHED.items())
        + ". Those figures come from other patient splits of the full 279-patient dataset, so the comparison is "
        "indicative, not like for like.", "",
        "## Calibration and threshold",
        f"Probabilities are the sigmoid output, not calibrated. The threshold that maximises balanced accuracy "
        f"on the val patients (int8) is {tuned['threshold']:.3f}; applied to the test patients it gives balanced "
        f"accuracy {tuned['test_int8_at_threshold']['balanced_accuracy']:.3f} and recall "
        f"{tuned['test_int8_at_threshold']['sensitivity']:.3f}. The runtime uses 0.5; ROC AUC is given as the "
        "threshold-free measure.", "",
        "## Recipe comparison (the choice of default)", "",
        "The same patient split and seed for every candidate; early stopping on val loss restores each one's best "
        "epoch. Epoch budgets: " + ", ".join(f"{c['name']} {c.get('epochs_budget', '?')}" for c in card["comparison"])
        + ".", "",
        "| candidate | input | stain jitter | class weights | val balanced acc (int8) | test balanced acc (int8) "
        "| test recall (int8) | int8 latency ms (batch 1) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {c['name']}{'' if c.get('parity_passed', True) else ' (failed int8 parity: not eligible)'} | "
              f"{c.get('input_size', '?')} px | {_on(c.get('stain_augment'))} | "
              f"{_on(c.get('class_weights'))} | {c['val_balanced_accuracy']:.3f} | {c['test_balanced_accuracy']:.3f} | "
              f"{c['test_recall']:.3f} | {c['int8_latency_ms']:.2f} |" for c in card["comparison"]]
    lines += [
        "", "The default is chosen on the **val** patients (balanced accuracy, then latency); test numbers are "
        "shown for completeness, not used for the choice.", "",
        "## Intended use and limitations",
        "- Intended: demonstrating and benchmarking edge inference and Grad-CAM on IDC patches; research.",
        "- Not intended: diagnosis, screening, triage or any clinical use.",
        f"- Trained on {len(split['groups']['train'])} patients of one institution's scans; performance on other "
        "scanners, stains and patients is unknown and likely lower. 50x50 patches lack context a pathologist "
        "would use. Most patients contribute a sample of 2-144 patches, so per-patient figures rest on few tiles.",
        "- Grad-CAM maps show what drove the score at 16x16 (or coarser) resolution; they are not lesion "
        "segmentations.",
        "", "Reproduce: `make default-model` (needs `../shared/data/idc`). Python, NumPy and TensorFlow "
        "seeds are fixed, but TensorFlow's CPU kernels are not bitwise deterministic, so a retrain lands "
        "close to, not exactly on, these numbers.",
    ]
    return "\n".join(lines)
