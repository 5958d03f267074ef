"""Choose the embedded default IDC model among candidate runs and install it into the package.

``edgehisto default-model`` (``release/cli_default_model.py``) is the command over these functions;
``make default-model`` runs the whole thing. The choice is made on the **val** patients (int8
balanced accuracy, then int8 latency); the test patients only appear in the model card.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgehisto.bundle.manifest import load_bundle
from edgehisto.bundle.manifest_entries import GoldenSet
from edgehisto.bundle.manifest_writer import update_manifest
from edgehisto.datasets.run_info import RunInfo
from edgehisto.errors import ExportError
from edgehisto.release.idc_card import held_out_metrics, write_model_card
from edgehisto.runtime.classifier import Classifier
from edgehisto.runtime.registry import DEFAULT_MODEL, MODELS_DIR

MAX_BUNDLE_BYTES = 5 * 1024 * 1024
# Real IDC patches that `make demo` classifies without ../shared (IDC layout: PATIENT/CLASS/FILE).
SAMPLES_DIR = MODELS_DIR.parents[1] / "samples" / "idc"
SAMPLES_PER_CLASS = 12
_LOG = logging.getLogger(__name__)  # default progress sink; the CLI passes its own


@dataclass(frozen=True)
class InstalledDefault:
    """An installed default bundle: where it is, the candidates' comparison (chosen first), its size."""

    dest: Path
    comparison: list[dict]
    total_bytes: int


def int8_latency_ms(bundle_dir: Path, repeats: int = 100) -> float:
    """Median batch-1 int8 classify latency of a bundle (backbone + head), one thread."""
    from edgehisto.bench.timing import latency_ms

    clf = Classifier(bundle_dir, precision="int8", threads=1, allow_failed_parity=True)
    stage = clf.stages[clf.bundle.entry_stage]
    x = np.random.default_rng(0).random((1, *clf.spec.input_size, 3), dtype=np.float32)
    return latency_ms(lambda: clf.head(clf.activations(x, stage), stage), repeats, warmup=5)["median_ms"]


def compare(candidates: list[tuple[Path, Path]], data_dir: Path) -> list[dict]:
    """Val/test int8 metrics and latency of each (run, bundle) candidate, best first.

    A candidate whose export failed its parity gates is measured and listed (the comparison says what
    each lever did) but is not eligible, and sorts last.
    """
    rows = []
    for run_dir, bundle_dir in candidates:
        eligible = load_bundle(bundle_dir).parity_passed is True
        metrics = held_out_metrics(bundle_dir, run_dir, data_dir, allow_failed_parity=not eligible)
        size = load_bundle(bundle_dir).preprocess.input_size[0]
        config = RunInfo.load(run_dir).config
        rows.append({"name": f"{size}x{size} input ({run_dir.name})", "run_dir": str(run_dir),
                     "bundle_dir": str(bundle_dir), "input_size": size, "stain_augment": config["stain_augment"],
                     "class_weights": config["class_weights"], "epochs_budget": config["epochs"],
                     "parity_passed": eligible,
                     "val_balanced_accuracy": metrics["val"]["int8"]["balanced_accuracy"],
                     "test_balanced_accuracy": metrics["test"]["int8"]["balanced_accuracy"],
                     "test_recall": metrics["test"]["int8"]["sensitivity"],
                     "int8_latency_ms": int8_latency_ms(bundle_dir)})
    return sorted(rows, key=lambda r: (not r["parity_passed"], -round(r["val_balanced_accuracy"], 3),
                                       r["int8_latency_ms"]))


def install(candidates: list[tuple[Path, Path]], data_dir: Path, dest: Path = MODELS_DIR / DEFAULT_MODEL,
            log: Callable[[str], None] = _LOG.info) -> InstalledDefault:
    """Compare, copy the winner into the package, write its model card, re-hash its manifest.

    Args:
        candidates: (run directory, bundle directory) pairs of trained and exported IDC models.
        log: receives one progress line at a time.
    """
    if not candidates:
        raise ExportError("no candidate RUN_DIR:BUNDLE_DIR pairs to choose the default model from")
    rows = compare(candidates, data_dir)
    best = rows[0]
    if not best["parity_passed"]:
        raise ExportError("no candidate passed its parity gates at export; nothing to install")
    log(f"chosen: {best['name']} (val balanced accuracy {best['val_balanced_accuracy']:.3f})")
    return _install_bundle(Path(best["bundle_dir"]), Path(best["run_dir"]), data_dir, rows, dest, log)


def _install_bundle(bundle_dir: Path, run_dir: Path, data_dir: Path, rows: list[dict], dest: Path,
                    log: Callable[[str], None]) -> InstalledDefault:
    """Copy a bundle into the package as the default, with its model card, and re-hash it."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(bundle_dir, dest)
    update_manifest(dest, golden=_attribute_golden_set(dest, load_bundle(dest, verify=False).golden))
    write_model_card(dest, run_dir, data_dir, rows, log=log)
    write_demo_samples(run_dir, data_dir, SAMPLES_DIR, log=log)
    update_manifest(dest, name=DEFAULT_MODEL)  # the card is part of the bundle: hash it too
    total = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    if total > MAX_BUNDLE_BYTES:
        raise ExportError(f"{dest} is {total / 1e6:.1f} MB, over the 5 MB budget")
    return InstalledDefault(dest, rows, total)


def _attribute_golden_set(bundle_dir: Path, golden: GoldenSet) -> dict:
    """Name the source and licence of every real golden tile (``golden/SOURCES.md``); returns the new entry."""
    from edgehisto.release.idc_card import MIT_PATIENTS

    lines = ["# The golden tiles: real IDC patches", "",
             "Real 50x50 H&E patches from *Breast Histopathology Images* (IDC_regular_ps50_idx5; Janowczyk & "
             "Madabhushi 2016, from Cruz-Roa et al. 2014), drawn from the model's training patients. The dataset "
             "is published on Kaggle under CC0; the copies of the 16 patients " + ", ".join(sorted(MIT_PATIENTS))
             + " come from iotJumpway/Intel-Examples (IDC-Classification), MIT licence, (c) 2018 Adam "
             "Milton-Barker.", "",
             "| tile | origin (patient/class/file) | licence of the copy |", "|---|---|---|"]
    for tile, origin in zip(golden.tiles, golden.origins, strict=True):
        patient = Path(origin).parts[0]
        lines.append(f"| {tile} | {origin} | {'MIT' if patient in MIT_PATIENTS else 'CC0'} |")
    (bundle_dir / "golden" / "SOURCES.md").write_text("\n".join(lines) + "\n")
    return golden.with_source("real IDC patches of training patients (IDC_regular_ps50_idx5): see "
                              "golden/SOURCES.md for each tile's origin and licence")


def write_demo_samples(run_dir: Path, data_dir: Path, dest: Path, per_class: int = SAMPLES_PER_CLASS,
                       seed: int = 0, log: Callable[[str], None] = _LOG.info) -> list[str]:
    """Copy ``per_class`` real patches of each class from the run's **test** patients into ``dest``.

    At most one patch per patient and class, from patients taken in a seeded random order, full-size
    (50x50) patches only, so that the demo shows many patients and no slide-edge padding. Returns the
    relpaths.
    """
    from edgehisto.datasets.splits import read_split
    from edgehisto.release.idc_card import MIT_PATIENTS

    rows = [r for r in read_split(run_dir) if r["side"] == "test"]
    rng = np.random.default_rng(seed)
    patients = sorted({r["group"] for r in rows})
    order = [patients[i] for i in rng.permutation(len(patients))]
    chosen = []
    for label in (1, 0):
        for patient in order:
            if sum(int(Path(c).parts[1]) == label for c in chosen) == per_class:
                break
            candidates = sorted(r["relpath"] for r in rows if r["group"] == patient and int(r["label"]) == label
                                and _full_size(data_dir / r["relpath"]))
            if candidates:
                chosen.append(candidates[int(rng.integers(len(candidates)))])
    if dest.exists():
        shutil.rmtree(dest)
    for relpath in chosen:
        (dest / relpath).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_dir / relpath, dest / relpath)
    lines = ["# Real IDC sample patches for `make demo`", "",
             f"{len(chosen)} real 50x50 H&E patches ({per_class} IDC-positive, {per_class} IDC-negative) of "
             f"{len({Path(c).parts[0] for c in chosen})} **test** patients of the embedded default model (patients it "
             f"never saw in training or model choice): patients taken in a seeded random order (seed {seed}) until "
             f"each class has {per_class}, one full-size patch per patient and class, so most patients give one of "
             "each. Layout: `PATIENT/CLASS/FILE` as in the dataset; the class in the folder and in the file name is "
             "the dataset's label.", "",
             "Source: *Breast Histopathology Images* (IDC_regular_ps50_idx5; Janowczyk & Madabhushi 2016, from "
             "Cruz-Roa et al. 2014), published on Kaggle under CC0. The copies of the 16 patients "
             + ", ".join(sorted(MIT_PATIENTS)) + " come from iotJumpway/Intel-Examples (IDC-Classification), "
             "MIT licence, (c) 2018 Adam Milton-Barker.", "",
             "| file | licence of the copy |", "|---|---|"]
    lines += [f"| {r} | {'MIT' if Path(r).parts[0] in MIT_PATIENTS else 'CC0'} |" for r in chosen]
    (dest / "README.md").write_text("\n".join(lines) + "\n")
    log(f"{len(chosen)} demo samples from test patients -> {dest}")
    return chosen


def _full_size(path: Path) -> bool:
    from edgehisto.datasets.files import png_size

    return png_size(path) == (50, 50)
