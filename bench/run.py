"""One bench run: every variant of every bundle stage, measured side by side on one machine.

Accuracy numbers come from a labelled set. Every latency is taken with one method,
``bench.timing.interleaved``: the calls compared in a table are timed together in rotating rounds,
so load from other processes hits them alike, and every ratio exists per round as well as overall.
Targets are judged as ratios within one run (``bench/verdicts.py``) and stated for this machine's ISA.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from edgehisto.bench.config import BenchConfig, no_progress, timed_together
from edgehisto.bench.levers import decode_cost, session_creation
from edgehisto.bench.machine import installed, load_average, machine_info
from edgehisto.bench.process import whole_process
from edgehisto.bench.roofline import gemm_peak
from edgehisto.bench.routed import bench_routed
from edgehisto.bench.stage import bench_stage, missing_files, stage_roofline
from edgehisto.bench.targets import evaluate_targets
from edgehisto.bench.verdicts import ratio_target
from edgehisto.bundle.manifest import Bundle, load_bundle
from edgehisto.bundle.preprocess import load_resized, normalize
from edgehisto.errors import EdgehistoError
from edgehisto.runtime.classifier import Classifier

__all__ = ["BenchConfig", "run_bench", "bench_bundle"]

KERAS_SCRIPT = """
import sys, json, numpy as np, keras
from edgehisto.bundle.manifest import load_bundle
from edgehisto.bundle.preprocess import load_resized, normalize
from edgehisto.errors import EdgehistoError
bundle = load_bundle(sys.argv[1], verify=False)
stage = bundle.stages[bundle.entry_stage]
model = keras.models.load_model(bundle.file(stage.reference_keras), compile=False)
model = keras.Model(model.input, model.get_layer(stage.reference_outputs["probabilities"]).output)
x = normalize(load_resized(sys.argv[2], bundle.preprocess), bundle.preprocess)[None]
print(json.dumps(model.predict(x, verbose=0).tolist()))
"""


def _bench_tiles(bundle: Bundle, data_dir: Path | None, limit: int) -> tuple[Path, list[str], np.ndarray]:
    """The bundle's held-out tiles under ``data_dir``, else under its recorded data root, else every
    tile of ``data_dir``: one ``--data`` can serve several bundles of different tasks."""
    from edgehisto.datasets.labelled import held_out_relpaths, labelled_tiles

    if data_dir is not None and not held_out_relpaths(bundle, Path(data_dir)):
        try:
            return labelled_tiles(bundle, None, limit)
        except EdgehistoError:
            pass
    return labelled_tiles(bundle, data_dir, limit)


def bench_bundle(bundle_dir: Path, data_dir: Path | None, config: BenchConfig,
                 log: Callable[[str], None] = no_progress) -> dict:
    """Measure one bundle: per-stage variants, roofline, routing, whole-process cold start and RSS."""
    from edgehisto.datasets.tasks import TASKS

    bundle = load_bundle(bundle_dir)
    root, relpaths, labels = _bench_tiles(bundle, data_dir, config.limit)
    spec = bundle.preprocess
    x = normalize(np.stack([load_resized(root / p, spec) for p in relpaths]), spec)
    log(f"bench {bundle_dir}: {len(x)} labelled tiles from {root}")
    truth = TASKS[bundle.task].stage_labels(labels)  # per stage; -1 where a stage does not apply
    result = {"bundle": str(bundle_dir), "name": bundle.name, "task": bundle.task,
              "arch": bundle.arch, "routing": bool(bundle.routing), "data": str(root),
              "n_tiles": len(x), "stages": {}, "roofline": {}}
    measured_backbones: dict[str, str] = {}
    for name, stage in bundle.stages.items():
        result["stages"][name] = bench_stage(bundle, stage, x, truth[name], config, log)
        backbone = stage.backbone("fp32")
        if backbone in measured_backbones:  # a multitask model's stages share one backbone
            result["roofline"][name] = {"same_as": measured_backbones[backbone]}
            continue
        log(f"  {name}: roofline (MACs, backbone latency, operator profile)")
        result["roofline"][name] = stage_roofline(bundle, stage, x[:1], config)
        measured_backbones[backbone] = name
    tile = root / relpaths[0]
    if bundle.routing:
        result["routed"] = bench_routed(bundle, x, labels, tile, config, log)
    log("  levers: session creation as shipped vs pre-optimised; image decode")
    entry = bundle.stages[bundle.entry_stage]
    result["levers"] = {"session_creation": [session_creation(bundle, entry, p, x[:1]) for p in ("fp32", "int8")],
                        "decode": decode_cost(bundle, tile)}
    log("  whole-process cold start and peak RSS")
    result["process"] = {
        f"classify_{p}": whole_process([sys.executable, "-m", "edgehisto", "classify", str(tile), "--model",
                                        str(bundle_dir), "--precision", p, "--format", "json", "--allow-failed-parity"],
                                       config.process_repeats)
        for p in ("fp32", "int8")
    }
    if missing_files("keras_fp32", bundle, bundle.stages[bundle.entry_stage]) is None:
        result["process"]["keras_predict"] = whole_process([sys.executable, "-c", KERAS_SCRIPT, str(bundle_dir),
                                                           str(tile)], config.process_repeats)
    return result


def compare_multitask(bundles: list[dict], paths: list[Path], data_dir: Path | None, config: BenchConfig,
                      isa: str, log: Callable[[str], None]) -> dict | None:
    """Routed int8 latency of a three-model hierarchy vs a multitask bundle of the same task, interleaved."""
    kinds = {}
    for result, path in zip(bundles, paths, strict=True):
        if result["task"] == "breakhis":
            kinds.setdefault("multitask" if result["arch"] == "multitask" else "hierarchy", path)
    if len(kinds) < 2:
        return None
    sizes = {k: load_bundle(p, verify=False).preprocess.input_size for k, p in kinds.items()}
    if sizes["multitask"] != sizes["hierarchy"]:  # a smaller input is cheaper whatever the architecture
        log(f"multitask vs hierarchy not compared: input sizes differ ({sizes})")
        return None
    log("multitask vs three-model hierarchy, routed int8, interleaved")
    classifiers = {k: Classifier(p, precision="int8", allow_failed_parity=True) for k, p in kinds.items()}
    bundle = classifiers["multitask"].bundle
    root, relpaths, _ = _bench_tiles(bundle, data_dir, 8)
    x1 = normalize(load_resized(root / relpaths[0], bundle.preprocess), bundle.preprocess)[None]
    timed = timed_together({k: (lambda c=c: c.classify_tensor(x1)) for k, c in classifiers.items()}, config)
    return {"bundles": {k: str(p) for k, p in kinds.items()}, "latency": timed,
            "target": ratio_target("three-model hierarchy / multitask routed int8 latency", timed["hierarchy"],
                                   timed["multitask"], 1.7, ">=", isa)}


def run_bench(bundles: list[Path], data_dir: Path | None, config: BenchConfig,
              log: Callable[[str], None] = no_progress) -> dict:
    """Bench several bundles and return the whole machine-readable report."""
    machine = machine_info()
    log(f"machine: {machine['cpu']}, ISA {machine['isa']}, {machine['cores']} cores, load {machine['load_average']}")
    peaks = None
    if installed("onnx"):
        log("GEMM peaks (int8 MatMulInteger, fp32 MatMul, 1024^3)")
        peaks = {kind: gemm_peak(kind) for kind in ("int8", "fp32")}
    results, benched, skipped = [], [], []
    for path in bundles:
        try:
            result = bench_bundle(path, data_dir, config, log)
        except EdgehistoError as error:  # e.g. no labelled data for this bundle's task: bench the others
            log(f"bench {path}: skipped: {error}")
            skipped.append({"bundle": str(path), "why": str(error)})
            continue
        result["targets"] = evaluate_targets(result, machine["isa"])
        results.append(result)
        benched.append(path)
    report = {"machine": machine, "config": asdict(config), "gemm_peaks": peaks, "bundles": results,
              "skipped_bundles": skipped}
    comparison = compare_multitask(results, benched, data_dir, config, machine["isa"], log)
    if comparison:
        report["multitask_vs_hierarchy"] = comparison
    report["load_average_after"] = load_average()
    return report
