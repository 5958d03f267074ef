"""The embedded BreaKHis bundle: measured on held-out patients, carded, slimmed and installed.

``edgehisto breakhis-model`` (``export/cli_breakhis_model.py``) is the command over these
functions; ``make breakhis-model`` runs the whole chain from ``../shared/data/breakhis/real``.
Candidates (the seed's three-model hierarchy, the multitask variant) are compared on the **val**
patients; the test patients appear only in the model card. Every figure is measured with the
onnxruntime runtime that ships, at fp32 and int8.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgehisto.bundle.manifest import PRECISIONS, load_bundle, runtime_needs
from edgehisto.data.splits import read_split
from edgehisto.data.tasks import BREAKHIS, END_TO_END_CLASSES
from edgehisto.errors import ExportError
from edgehisto.evaluate.metrics import classification_metrics, plot_confusion_matrix
from edgehisto.export.exporter import write_manifest
from edgehisto.runtime.classifier import Classifier
from edgehisto.runtime.registry import BREAKHIS_MODEL, MODELS_DIR

_LOG = logging.getLogger(__name__)  # default progress sink; the CLI passes its own
MAX_BUNDLE_BYTES = 45_000_000  # the wheel stays under 60 MB with the IDC default beside it
TARGET_BINARY_BALANCED_ACCURACY = 0.85
GOLDEN_SYNTH_IMAGES, GOLDEN_SYNTH_SEED = 64, 0
CLASSES = END_TO_END_CLASSES["breakhis"]


@dataclass(frozen=True)
class InstalledBreakhis:
    """The installed bundle, the candidates' comparison (chosen first) and its size in bytes."""

    dest: Path
    comparison: list[dict]
    total_bytes: int


def patient_folder(relpath: str) -> str:
    """The BreaKHis patient folder of a file (``SOB_<B|M>_<SUB>_<YY>-<SLIDE...>``, in either layout)."""
    return next(part for part in reversed(Path(relpath).parts[:-1]) if re.match(r"^SOB_[BM]_[A-Z]+_", part))


def magnification(relpath: str) -> int:
    """The magnification in a BreaKHis file name (``...-<MAG>-<SEQ>.png`` or ``...-<MAG>-i<INDEX>.png``)."""
    return int(re.search(r"-(\d+)-i?\d+\.png$", relpath).group(1))


def _figures(truth: np.ndarray, predicted: np.ndarray) -> dict:
    sensitivity = float((predicted[truth == 1] == 1).mean()) if (truth == 1).any() else None
    specificity = float((predicted[truth == 0] == 0).mean()) if (truth == 0).any() else None
    # With one class present, "balanced accuracy" would be that class's recall: say nothing instead.
    balanced = None if sensitivity is None or specificity is None else (sensitivity + specificity) / 2
    return {"n": int(len(truth)), "accuracy": float((truth == predicted).mean()),
            "balanced_accuracy": balanced, "sensitivity": sensitivity, "specificity": specificity,
            "confusion_matrix": [[int(((truth == t) & (predicted == p)).sum()) for p in (0, 1)] for t in (0, 1)]}


def _vote(values: np.ndarray, folders: np.ndarray, n_classes: int) -> tuple[list[str], np.ndarray]:
    """Per patient folder, the most frequent value (ties: the smallest index)."""
    names = sorted(set(folders))
    return names, np.array([np.bincount(values[folders == f], minlength=n_classes).argmax() for f in names])


def side_report(bundle_dir: Path, run_dir: Path, data_dir: Path, side: str) -> dict:
    """Image- and patient-level figures of one split side, fp32 and int8, with the runtime."""
    rows = [r for r in read_split(run_dir) if r["side"] == side]
    if not rows:
        raise ExportError(f"{run_dir} has no {side} tiles")
    labels = np.array([int(r["label"]) for r in rows])
    # Votes are per group of the split key (the slide id): one patient's tissue across folders.
    folders = np.array([r["group"] for r in rows])
    mags = np.array([magnification(r["relpath"]) for r in rows])
    present = {CLASSES[v] for v in labels}
    report = {"patients": sorted(set(folders)), "n_images": len(rows),
              "subtypes_without_patient": [c for c in CLASSES if c not in present]}
    for precision in PRECISIONS:
        results = Classifier(bundle_dir, precision=precision).classify_paths([data_dir / r["relpath"] for r in rows])
        failed = [r for r in results if not r.ok]
        if failed:
            raise ExportError(f"{len(failed)} held-out images failed, first: {failed[0].path}: {failed[0].error}")
        binary = np.array([r.stages[0].class_index for r in results])
        routed = np.array([CLASSES.index(r.stages[1].label) for r in results])
        truth_binary = (labels >= 4).astype(int)
        names, voted_binary = _vote(binary, folders, 2)
        _, voted_routed = _vote(routed, folders, len(CLASSES))
        _, truth_patient = _vote(labels, folders, len(CLASSES))
        report[precision] = {
            "image": {"binary": _figures(truth_binary, binary),
                      "routed": classification_metrics(labels, routed, CLASSES)},
            "by_magnification": {int(m): {"binary": _figures(truth_binary[mags == m], binary[mags == m]),
                                          "routed_accuracy": float((labels[mags == m] == routed[mags == m]).mean())}
                                 for m in sorted(set(mags))},
            "patient": {"binary": _figures((truth_patient >= 4).astype(int), voted_binary),
                        "routed_accuracy": float((truth_patient == voted_routed).mean()),
                        "votes": _votes(names, truth_patient, voted_binary, voted_routed)},
        }
    return report


def _votes(names, truth, binary, routed) -> dict:
    return {n: {"true": CLASSES[t], "binary": BREAKHIS.stages["binary"][b], "routed": CLASSES[v]}
            for n, t, b, v in zip(names, truth, binary, routed, strict=True)}


def shipped_bytes(bundle_dir: Path) -> int:
    """Bytes of the files an installed copy of the bundle would hold (see ``_not_needed``)."""
    root = Path(bundle_dir)
    return sum(p.stat().st_size for p in root.rglob("*")
               if p.is_file() and (p.name == "test_split.csv" or runtime_needs(p.relative_to(root).as_posix())))


def compare(candidates: list[tuple[Path, Path]], data_dir: Path) -> list[dict]:
    """Val and test figures (int8) of each (run, bundle) candidate, the choice first.

    A candidate is eligible when its shipped files (fp32 and int8) fit ``MAX_BUNDLE_BYTES``; among
    the eligible, the best val binary balanced accuracy wins, then val routed accuracy. The test
    figures are reported, never used to choose.
    """
    rows = []
    for run_dir, bundle_dir in candidates:
        val = side_report(bundle_dir, run_dir, data_dir, "val")["int8"]
        test = side_report(bundle_dir, run_dir, data_dir, "test")["int8"]
        run = json.loads((run_dir / "run.json").read_text())
        size = shipped_bytes(bundle_dir)
        rows.append({"name": f"{run['arch']} ({run_dir.name})", "arch": run["arch"], "run_dir": str(run_dir),
                     "bundle_dir": str(bundle_dir), "weights": run["config"].get("weights"),
                     "val_binary_balanced_accuracy": val["image"]["binary"]["balanced_accuracy"],
                     "val_routed_accuracy": val["image"]["routed"]["accuracy"],
                     "test_binary_balanced_accuracy": test["image"]["binary"]["balanced_accuracy"],
                     "test_routed_accuracy": test["image"]["routed"]["accuracy"],
                     "shipped_mb": round(size / 1e6, 1), "fits": size <= MAX_BUNDLE_BYTES})
    return sorted(rows, key=lambda r: (not r["fits"], -round(r["val_binary_balanced_accuracy"] or 0.0, 3),
                                       -r["val_routed_accuracy"]))


def install(candidates: list[tuple[Path, Path]], data_dir: Path, *, cv: tuple[Path, ...] = (),
            pretrain: Path | None = None, probes: Path | None = None, dest: Path = MODELS_DIR / BREAKHIS_MODEL,
            log: Callable[[str], None] = _LOG.info) -> InstalledBreakhis:
    """Compare, then install the winner into the package without the files the runtime does not need.

    ``cv`` (one ``cv.json`` per recipe compared) and ``pretrain`` are records quoted by the card.
    The Keras reference, the TFLite files and the held-out listing stay listed (with their sha256)
    but are not copied, so ``check-parity`` still runs against the development bundle.
    """
    if not candidates:
        raise ExportError("no candidate RUN_DIR:BUNDLE_DIR pairs")
    rows = compare(candidates, data_dir)
    best = rows[0]
    if not best["fits"]:
        raise ExportError(f"no candidate fits the {MAX_BUNDLE_BYTES / 1e6:.0f} MB budget with fp32 and int8 "
                          f"(smallest: {min(r['shipped_mb'] for r in rows)} MB)")
    log(f"chosen: {best['name']} (val binary balanced accuracy {_pct(best['val_binary_balanced_accuracy'])})")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch) / BREAKHIS_MODEL
        shutil.copytree(best["bundle_dir"], work)
        manifest = _synthetic_golden_set(work, log)
        manifest["name"] = BREAKHIS_MODEL
        write_manifest(work, manifest)
        card = model_card(work, Path(best["run_dir"]), data_dir, rows, cv, pretrain, log)
        card["probes"] = json.loads(probes.read_text()) if probes else None
        card["caveat"] = caveat(card)
        (work / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
        (work / "MODEL_CARD.md").write_text(render(card) + "\n")
        write_manifest(work, manifest)  # hash the card and its figures too
        # Build beside the destination, check it, then swap it in: a failure keeps the installed bundle.
        staged = dest.parent / f".{dest.name}.staged"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(work, staged, ignore=_not_needed(work))
        load_bundle(staged)  # every shipped file matches its sha256
        total = sum(p.stat().st_size for p in staged.rglob("*") if p.is_file())
        if total > MAX_BUNDLE_BYTES:
            shutil.rmtree(staged)
            raise ExportError(f"the bundle is {total / 1e6:.1f} MB, over the {MAX_BUNDLE_BYTES / 1e6:.0f} MB budget")
        if dest.exists():
            shutil.rmtree(dest)
        staged.rename(dest)
    return InstalledBreakhis(dest, rows, total)


def _not_needed(root: Path):
    """Skip what the runtime does not read, except the held-out listing (file names only, a few
    kB) that lets ``evaluate`` and the tests score the embedded bundle on its test patients."""
    def ignore(folder: str, names: list[str]) -> list[str]:
        relative = Path(folder).relative_to(root)
        return [n for n in names if (Path(folder) / n).is_file() and n != "test_split.csv"
                and not runtime_needs((relative / n).as_posix())]
    return ignore


def _synthetic_golden_set(bundle_dir: Path, log: Callable[[str], None]) -> dict:
    """A golden set of synthetic BreaKHis-like images: no real tissue in the package."""
    from edgehisto.data.synth_breakhis import synthesize_breakhis
    from edgehisto.export.golden import replace_golden_set

    with tempfile.TemporaryDirectory() as scratch:
        synthesize_breakhis(Path(scratch), GOLDEN_SYNTH_IMAGES, seed=GOLDEN_SYNTH_SEED)
        tiles = BREAKHIS.scan(Path(scratch))
        log(f"golden set from {len(tiles.relpaths)} synthetic images (seed {GOLDEN_SYNTH_SEED})")
        return replace_golden_set(bundle_dir, [tiles.root / p for p in tiles.relpaths],
                                  f"synthetic BreaKHis-like images (edgehisto synth breakhis, seed "
                                  f"{GOLDEN_SYNTH_SEED}); the embedded bundle carries no image of the real data")


def model_card(bundle_dir: Path, run_dir: Path, data_dir: Path, comparison: list[dict], cv: tuple[Path, ...],
               pretrain: Path | None, log: Callable[[str], None]) -> dict:
    """Measure the held-out patients and gather what the card states; write the confusion PNGs."""
    run = json.loads((run_dir / "run.json").read_text())
    log("measuring the test patients with the runtime (fp32 and int8)")
    test = side_report(bundle_dir, run_dir, data_dir, "test")
    figures = Path(bundle_dir) / "card"
    figures.mkdir(exist_ok=True)
    for precision in PRECISIONS:
        routed = test[precision]["image"]["routed"]
        plot_confusion_matrix(np.asarray(routed["confusion_matrix"]), CLASSES,
                              figures / f"held_out_routed_{precision}.png",
                              f"8-class routed, test patients, {precision} (n={routed['n']})")
        binary = test[precision]["image"]["binary"]
        plot_confusion_matrix(np.asarray(binary["confusion_matrix"]), BREAKHIS.stages["binary"],
                              figures / f"held_out_binary_{precision}.png",
                              f"benign/malignant, test patients, {precision} (n={binary['n']})")
    split = json.loads((run_dir / "split.json").read_text())
    folders = {side: sorted({patient_folder(r["relpath"]) for r in read_split(run_dir) if r["side"] == side})
               for side in ("train", "val", "test")}
    images = {side: sum(1 for r in read_split(run_dir) if r["side"] == side) for side in ("train", "val", "test")}
    everything = read_split(run_dir)
    squashed = sum(1 for r in everything if "200X-224/" in r["relpath"])
    data = {"images": len(everything), "squashed_224": squashed,
            "magnifications": {str(m): sum(1 for r in everything if magnification(r["relpath"]) == m)
                               for m in sorted({magnification(r["relpath"]) for r in everything})}}
    stage = next(iter(load_bundle(bundle_dir).manifest["stages"].values()))
    return {
        "patient_folders": folders, "images": images, "data": data, "gradcam_shape": stage["activations_shape"][:2],
        "bundle": BREAKHIS_MODEL, "arch": run["arch"], "config": run["config"], "n_params": run["n_params"],
        "split": split, "preprocess": run["preprocess"], "test": test,
        "val": side_report(bundle_dir, run_dir, data_dir, "val"),
        "cv": {path.parent.name: json.loads(path.read_text()) for path in cv},
        "pretrain": json.loads(pretrain.read_text()) if pretrain else None,
        "target": {"binary_balanced_accuracy_int8": TARGET_BINARY_BALANCED_ACCURACY},
        "comparison": [{k: v for k, v in row.items() if k not in ("run_dir", "bundle_dir")} for row in comparison],
        "versions": run["provenance"]["versions"],
        "shipped_mb": round(shipped_bytes(bundle_dir) / 1e6, 1),
        "onnx_files": sorted(p.relative_to(bundle_dir).as_posix() for p in Path(bundle_dir).rglob("*.onnx")),
    }


def _stopping(cfg: dict) -> str:
    if cfg["patience"] >= cfg["epochs"]:
        return (f"a fixed {cfg['epochs']} epochs, as the grouped CV validated (EarlyStopping's patience "
                f"{cfg['patience']} never stops it: the val side is too small to stop on), ReduceLROnPlateau on "
                "val loss")
    return (f"up to {cfg['epochs']} epochs, ReduceLROnPlateau and EarlyStopping (val_loss, patience "
            f"{cfg['patience']}, best weights restored)")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _binary_row(name: str, m: dict) -> str:
    (tn, fp), (fn, tp) = m["confusion_matrix"]
    return (f"| {name} | {m['n']} | {_pct(m['accuracy'])} | {_pct(m['balanced_accuracy'])} | "
            f"{_pct(m['sensitivity'])} | {_pct(m['specificity'])} | TN {tn}, FP {fp}, FN {fn}, TP {tp} |")


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
    from edgehisto.export.model_card import describe_preprocess

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
    lines += _cv_lines(card["cv"])
    lines += _probe_lines(card.get("probes"))
    lines += ["", "## What this bundle holds, and why",
              f"{card['shipped_mb']} MB: {len(card['onnx_files'])} ONNX files ({', '.join(card['onnx_files'])}): "
              "the backbone in fp32 and int8 (U8S8, 7-bit weights, per-channel), the head and the exact Grad-CAM "
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
            lines.append(f"| {precision} | {mag}X | {b['n']} | {_pct(b['balanced_accuracy'])} | "
                         f"{_pct(b['sensitivity'])} | {_pct(b['specificity'])} | {figures['routed_accuracy']:.3f} |")
    lines += ["", "Routed 8-class (binary, then the subtype stage it routes to):", "",
              "| precision | image accuracy | image balanced acc | patient accuracy (vote) | "
              + " | ".join(f"recall {c}" for c in CLASSES) + " |",
              "|---|---|---|---|" + "---|" * len(CLASSES)]
    for precision in PRECISIONS:
        routed = test[precision]["image"]["routed"]
        support = {c: routed["per_class"][c]["support"] for c in CLASSES}
        recalls = " | ".join(_pct(routed["per_class"][c]["recall"]) if support[c] else "—" for c in CLASSES)
        lines.append(f"| {precision} | {routed['accuracy']:.3f} | {routed['balanced_accuracy']:.3f} | "
                     f"{test[precision]['patient']['routed_accuracy']:.3f} | {recalls} |")
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
              f"{_pct(val['int8']['image']['binary']['balanced_accuracy'])}, routed 8-class accuracy "
              f"{val['int8']['image']['routed']['accuracy']:.3f}.", "",
              "## Target", _target_line(int8, target, len(test["patients"])), _collapse_line(test["int8"]), "",
              "## Candidates (chosen on the val patients)", "",
              f"Eligible: the files an installed copy ships (ONNX fp32 and int8, golden set, card) fit "
              f"{MAX_BUNDLE_BYTES / 1e6:.0f} MB, so that the wheel stays under 60 MB beside the IDC model. "
              "Among the eligible, the best val binary balanced accuracy wins. Test columns are reported, "
              "not used to choose.", "",
              "| candidate | start | shipped MB | eligible | val binary bal. acc | val routed acc "
              "| test binary bal. acc | test routed acc |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {c['name']} | {c['weights'] and 'IDC-pretrained' or 'scratch'} | {c['shipped_mb']} | "
              f"{'yes' if c['fits'] else 'no'} | {_pct(c['val_binary_balanced_accuracy'])} | "
              f"{c['val_routed_accuracy']:.3f} | {_pct(c['test_binary_balanced_accuracy'])} | "
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
              "", "Reproduce: `make breakhis-model` (needs `../shared/data`). Seeds are fixed, but TensorFlow's CPU "
              "kernels are not bitwise deterministic, so a retrain lands close to, not exactly on, these numbers."]
    return "\n".join(lines)


def caveat(card: dict) -> str | None:
    """One line the kiosk shows beside every result when the model misses its held-out target."""
    binary = card["test"]["int8"]["image"]["binary"]
    target = card["target"]["binary_balanced_accuracy_int8"]
    if binary["sensitivity"] == 0 or binary["specificity"] == 0:
        called = "benign" if binary["sensitivity"] == 0 else "malignant"
        return f"on patients it never saw it calls every field {called}: it does not generalise"
    measured = binary["balanced_accuracy"]
    if measured is None or measured < target:
        shown = "not measurable" if measured is None else f"{measured:.2f}"
        return (f"on {len(card['test']['patients'])} slides it never saw, benign/malignant balanced accuracy is "
                f"{shown} (int8), below the {target:.2f} target: treat a label as a hint")
    return None


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


def _probe_lines(probes: dict | None) -> list[str]:
    if not probes:
        return []
    lines = ["", f"Frozen features, logistic regression, the same grouped {probes['folds']}-fold CV "
                 "(`edgehisto train breakhis-probe`): what a start's features carry before any fine-tuning.", "",
             "| features | held-out binary balanced acc (mean ± sd) |", "|---|---|"]
    names = {"pretrained_frozen": "IDC-pretrained DenseNet121, frozen", "random_frozen": "random DenseNet121, frozen",
             "colour_statistics": "per-channel colour mean and std (6 numbers)"}
    lines += [f"| {names.get(k, k)} | {v['mean']:.3f} ± {v['sd']:.3f} |" for k, v in probes["probes"].items()]
    return lines


def _cv_lines(records: dict[str, dict]) -> list[str]:
    if not records:
        return ["", "Grouped cross-validation: not run for this build."]
    first = next(iter(records.values()))
    cfg = first["config"]
    lines = ["", f"## Choosing the recipe: grouped {cfg['folds']}-fold CV over {first['n_groups']} slide ids "
                 f"({first['n_images']} fields)", "",
             f"Binary stage, every slide held out once, {cfg['epochs']} epochs at Adam {cfg['learning_rate']} "
             "(fixed: no held-out data steers training), one run per fold and recipe; the same folds for every "
             "recipe. Mean ± sd over folds; the slide level is the majority vote of a slide's fields.", "",
             "| recipe | class weights | stain jitter | image balanced acc | sensitivity | specificity "
             "| slide balanced acc |", "|---|---|---|---|---|---|---|"]
    for name, record in records.items():
        c = record["config"]
        for start, levels in record["summary"].items():
            image, patient = levels["image"], levels["patient"]
            lines.append(f"| {name} ({start}) | {'on' if c.get('class_weights') else 'off'} | "
                         f"{'on' if c.get('stain_augment') else 'off'} | "
                         f"{image['balanced_accuracy']['mean']:.3f} ± {image['balanced_accuracy']['sd']:.3f} | "
                         f"{image['sensitivity']['mean']:.3f} | {image['specificity']['mean']:.3f} | "
                         f"{patient['balanced_accuracy']['mean']:.3f} ± {patient['balanced_accuracy']['sd']:.3f} |")
    return lines
