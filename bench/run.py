"""One bench run: every variant of every bundle stage, measured side by side on one machine.

Accuracy numbers come from a labelled set; latencies are wall-clock medians in the same run,
so the targets are judged as ratios between variants, not as absolute times.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgehisto.bench.process import whole_process
from edgehisto.bench.variants import VARIANTS, make_variant
from edgehisto.bundle.manifest import load_bundle
from edgehisto.bundle.preprocess import load_resized, normalize
from edgehisto.runtime.timing import latency_ms, throughput

KERAS_SCRIPT = """
import sys, json, numpy as np, keras
from edgehisto.bundle.manifest import load_bundle
from edgehisto.bundle.preprocess import load_resized, normalize
from edgehisto.runtime.timing import latency_ms, throughput
bundle = load_bundle(sys.argv[1], verify=False)
stage = bundle.manifest["stages"][bundle.entry_stage]
model = keras.models.load_model(bundle.file(stage["reference_keras"]), compile=False)
layer = stage.get("reference_outputs", {}).get("probabilities", "probabilities")
model = keras.Model(model.input, model.get_layer(layer).output)
x = normalize(load_resized(sys.argv[2], bundle.preprocess), bundle.preprocess)[None]
print(json.dumps(model.predict(x, verbose=0).tolist()))
"""


def no_progress(_line: str) -> None:
    """The default progress callback of bench functions: say nothing (the CLI passes stderr)."""


@dataclass(frozen=True)
class BenchConfig:
    """What one bench run measures and how much."""
    repeats: int = 50
    batch: int = 32
    limit: int = 512
    process_repeats: int = 3


def machine_info() -> dict:
    """CPU model, core count, platform and tool versions."""
    from edgehisto.bundle.provenance import tool_versions

    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    model, flags = (names[0] if names else platform.processor()), cpuinfo
    return {"cpu": model, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "avx512_vnni": "avx512_vnni" in flags,
            "versions": tool_versions(("edgehisto", "tensorflow-cpu", "keras", "onnxruntime", "ai-edge-litert",
                                       "numpy", "opencv-python-headless"))}


def _accuracy(probs: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> dict:
    """Metrics on the tiles the stage applies to (label >= 0); agreement with Keras on all tiles."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    agreement = float(np.mean(probs.argmax(1) == reference.argmax(1)))
    rows = labels >= 0
    probs, labels, reference = probs[rows], labels[rows], reference[rows]
    predicted = probs.argmax(1)
    return {"accuracy": float(accuracy_score(labels, predicted)),
            "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
            "macro_f1": float(f1_score(labels, predicted, average="macro", zero_division=0)),
            "agreement_with_keras": agreement, "n_labelled": int(rows.sum())}


def bench_stage(bundle, stage, x, labels, config: BenchConfig, log: Callable[[str], None]) -> dict:
    """All variants of one stage: accuracy, batch-1 latency at 1 and all threads, throughput, size."""
    rows, reference, one, batch = {}, None, x[:1], x[: config.batch]
    for kind in VARIANTS:
        log(f"  {stage.name}: {kind}")
        default = make_variant(kind, bundle, stage, threads=None)
        probs = default.predict(x)
        reference = probs if kind == "keras_fp32" else reference
        row = {"size_mb": sum(p.stat().st_size for p in default.files()) / 1e6, **_accuracy(probs, labels, reference)}
        row["latency_all_threads"] = latency_ms(lambda v=default: v.predict(one), config.repeats)
        if kind != "keras_fp32":  # TF's thread pools are fixed at start-up: one setting per process
            single = make_variant(kind, bundle, stage, threads=1)
            row["latency_1_thread"] = latency_ms(lambda v=single: v.predict(one), config.repeats)
        row["throughput_tiles_per_s"] = throughput(lambda v=default: v.predict(batch), len(batch),
                                                   max(2, config.repeats // 10))
        if kind.startswith("onnx"):
            cam = latency_ms(lambda v=default: v.gradcam(one), config.repeats)
            row["gradcam_latency"] = cam
            row["gradcam_cost_ratio"] = cam["median_ms"] / row["latency_all_threads"]["median_ms"]
        rows[kind] = row
    return rows


def bench_routed(bundle, x: np.ndarray, labels: np.ndarray, config: BenchConfig) -> dict:
    """End-to-end routed classification: Keras (stage models in turn) vs the ONNX runtime."""
    from edgehisto.data.tasks import END_TO_END_CLASSES, TASKS, routed_labels
    from edgehisto.runtime.classifier import Classifier

    task = TASKS[bundle.task]
    classes = END_TO_END_CLASSES[task.name]
    keras_stages = {name: make_variant("keras_fp32", bundle, stage, None) for name, stage in bundle.stages.items()}

    def keras_routed(batch):
        return routed_labels(task, {n: v.predict(batch).argmax(1) for n, v in keras_stages.items()})

    def keras_one():  # what a Keras user would run per tile: binary, then the routed subtype model
        stage = bundle.entry_stage
        label = keras_stages[stage].predict(x[:1]).argmax(1)[0]
        routed = bundle.routing[stage][bundle.stages[stage].class_names[label]]
        return keras_stages[routed].predict(x[:1])

    reference = keras_routed(x)
    rows = {"keras_fp32": {"accuracy": float(np.mean(reference == labels)), "agreement_with_keras": 1.0,
                           "latency_all_threads": latency_ms(keras_one, config.repeats)}}
    for precision in ("fp32", "int8"):
        clf = Classifier(bundle, precision=precision, allow_failed_parity=True)
        predicted = np.array([classes.index(r.stages[-1].label) for r in clf.classify_tensor(x)])
        rows[f"onnx_{precision}"] = {
            "accuracy": float(np.mean(predicted == labels)),
            "agreement_with_keras": float(np.mean(predicted == reference)),
            "latency_all_threads": latency_ms(lambda c=clf: c.classify_tensor(x[:1]), config.repeats),
        }
    return rows


def bench_bundle(bundle_dir: Path, data_dir: Path | None, config: BenchConfig,
                 log: Callable[[str], None] = no_progress) -> dict:
    """Measure one bundle: per-stage variants plus whole-process cold start and peak RSS."""
    from edgehisto.data.labelled import labelled_tiles

    bundle = load_bundle(bundle_dir)
    root, relpaths, labels = labelled_tiles(bundle, data_dir, config.limit)
    spec = bundle.preprocess
    x = normalize(np.stack([load_resized(root / p, spec) for p in relpaths]), spec)
    log(f"bench {bundle_dir}: {len(x)} labelled tiles from {root}")
    from edgehisto.data.tasks import TASKS

    truth = TASKS[bundle.task].stage_labels(labels)  # per stage; -1 where a stage does not apply
    result = {"bundle": str(bundle_dir), "task": bundle.task, "data": str(root), "n_tiles": len(x),
              "stages": {name: bench_stage(bundle, stage, x, truth[name], config, log)
                         for name, stage in bundle.stages.items()}}
    if bundle.routing:
        log("  routed end to end (hierarchy)")
        result["routed"] = bench_routed(bundle, x, labels, config)
    tile = str(root / relpaths[0])
    log("  whole-process cold start and peak RSS")
    result["process"] = {
        f"classify_{p}": whole_process([sys.executable, "-m", "edgehisto", "classify", tile, "--model",
                                        str(bundle_dir), "--precision", p, "--format", "json"],
                                       config.process_repeats)
        for p in ("fp32", "int8")
    }
    result["process"]["keras_predict"] = whole_process([sys.executable, "-c", KERAS_SCRIPT, str(bundle_dir), tile],
                                                      config.process_repeats)
    result["targets"] = evaluate_targets(result)
    return result


def evaluate_targets(result: dict) -> list[dict]:
    """The issue's targets, judged from this run's numbers (ratios where timing is involved)."""
    targets = []

    def target(name, value, threshold, rule, note=""):
        ok = value <= threshold if rule == "<=" else value >= threshold
        targets.append({"target": name, "value": float(value), "threshold": threshold, "rule": rule,
                        "met": bool(ok), "note": note})

    for stage, rows in result["stages"].items():
        med = {k: r["latency_all_threads"]["median_ms"] for k, r in rows.items()}
        target(f"{stage}: ONNX int8 latency / TFLite int8 latency", med["onnx_int8"] / med["tflite_int8"], 1.0, "<=")
        target(f"{stage}: Keras predict latency / ONNX int8 latency", med["keras_fp32"] / med["onnx_int8"], 20.0, ">=")
        for kind in ("onnx_int8", "tflite_int8"):
            drop = rows["keras_fp32"]["accuracy"] - rows[kind]["accuracy"]
            target(f"{stage}: {kind} accuracy drop (points)", 100 * drop, 1.0, "<=")
    if "routed" in result:
        routed = {k: r["latency_all_threads"]["median_ms"] for k, r in result["routed"].items()}
        target("routed: Keras predict latency / ONNX int8 classify latency",
               routed["keras_fp32"] / routed["onnx_int8"], 20.0, ">=")
        drop = result["routed"]["keras_fp32"]["accuracy"] - result["routed"]["onnx_int8"]["accuracy"]
        target("routed: onnx_int8 accuracy drop (points)", 100 * drop, 1.0, "<=")
    cold = result["process"]["classify_int8"]
    target("cold `edgehisto classify tile.png` (s)", cold["seconds"], 1.0, "<=")
    target("peak RSS of classify (MB)", cold["peak_rss_mb"], 250.0, "<=")
    return targets


def run_bench(bundles: list[Path], data_dir: Path | None, config: BenchConfig,
              log: Callable[[str], None] = no_progress) -> dict:
    """Bench several bundles and return the whole machine-readable report."""
    return {"machine": machine_info(), "config": asdict(config),
            "bundles": [bench_bundle(b, data_dir, config, log) for b in bundles]}
