"""Choose the embedded default IDC model among candidate runs and install it into the package.

    python -m edgehisto.export.default_model --data ../shared/data/idc RUN_A:BUNDLE_A RUN_B:BUNDLE_B

The choice is made on the **val** patients (int8 balanced accuracy, then int8 latency); the test
patients only appear in the model card. ``make default-model`` runs the whole thing.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from edgehisto.export.exporter import write_manifest
from edgehisto.export.model_card import held_out_metrics, write_model_card
from edgehisto.runtime.bundle import MANIFEST, load_bundle
from edgehisto.runtime.classifier import Classifier
from edgehisto.runtime.registry import DEFAULT_MODEL, MODELS_DIR

MAX_BUNDLE_BYTES = 5 * 1024 * 1024


def int8_latency_ms(bundle_dir: Path, repeats: int = 100) -> float:
    """Median batch-1 int8 classify latency of a bundle (backbone + head), one thread."""
    clf = Classifier(bundle_dir, precision="int8", threads=1)
    stage = clf.stages[clf.bundle.entry_stage]
    x = np.random.default_rng(0).random((1, *clf.spec.input_size, 3), dtype=np.float32)
    samples = []
    for _ in range(repeats + 5):
        start = time.perf_counter()
        clf.head(clf.activations(x, stage), stage)
        samples.append(time.perf_counter() - start)
    return float(np.median(samples[5:]) * 1000)


def compare(candidates: list[tuple[Path, Path]], data_dir: Path) -> list[dict]:
    """Val/test int8 metrics and latency of each (run, bundle) candidate, best first."""
    rows = []
    for run_dir, bundle_dir in candidates:
        metrics = held_out_metrics(bundle_dir, run_dir, data_dir)
        size = load_bundle(bundle_dir).preprocess.input_size[0]
        rows.append({"name": f"{size}x{size} input ({run_dir.name})", "run_dir": str(run_dir),
                     "bundle_dir": str(bundle_dir),
                     "val_balanced_accuracy": metrics["val"]["int8"]["balanced_accuracy"],
                     "test_balanced_accuracy": metrics["test"]["int8"]["balanced_accuracy"],
                     "test_recall": metrics["test"]["int8"]["sensitivity"],
                     "int8_latency_ms": int8_latency_ms(bundle_dir)})
    return sorted(rows, key=lambda r: (-round(r["val_balanced_accuracy"], 3), r["int8_latency_ms"]))


def install(candidates: list[tuple[Path, Path]], data_dir: Path, dest: Path = MODELS_DIR / DEFAULT_MODEL) -> Path:
    """Compare, copy the winner into the package, write its model card, re-hash its manifest."""
    rows = compare(candidates, data_dir)
    best = rows[0]
    print(f"chosen: {best['name']} (val balanced accuracy {best['val_balanced_accuracy']:.3f})", file=sys.stderr)
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(best["bundle_dir"], dest)
    write_model_card(dest, Path(best["run_dir"]), data_dir, rows, log=lambda line: print(line, file=sys.stderr))
    manifest = json.loads((dest / MANIFEST).read_text())
    manifest["name"] = DEFAULT_MODEL
    write_manifest(dest, manifest)  # the card is part of the bundle: hash it too
    total = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    if total > MAX_BUNDLE_BYTES:
        raise SystemExit(f"{dest} is {total / 1e6:.1f} MB, over the 5 MB budget")
    print(f"installed {dest} ({total / 1e6:.2f} MB)", file=sys.stderr)
    return dest


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("candidates", nargs="+", help="RUN_DIR:BUNDLE_DIR pairs")
    args = parser.parse_args(argv)
    pairs = [tuple(Path(p) for p in c.split(":", 1)) for c in args.candidates]
    install(pairs, args.data)


if __name__ == "__main__":
    main()
