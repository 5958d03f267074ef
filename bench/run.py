"""One bench run: every variant of every bundle stage, measured side by side on one machine.

Accuracy numbers come from a labelled set. Every latency is taken with one method,
``bench.timing.interleaved``: the calls compared in a table are timed together in rotating rounds,
so load from other processes hits them alike, and every ratio exists per round as well as overall.
Targets are judged as ratios within one run (``bench/verdicts.py``) and stated for this machine's ISA.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgehisto.bench.levers import decode_cost, session_creation
from edgehisto.bench.machine import installed, load_average, machine_info
from edgehisto.bench.process import whole_process
from edgehisto.bench.roofline import gemm_call, gemm_peak, model_macs, operator_profile
from edgehisto.bench.timing import interleaved, throughput
from edgehisto.bench.variants import VARIANTS, make_variant
from edgehisto.bench.verdicts import ratio_target, value_target
from edgehisto.bundle import tensors
from edgehisto.bundle.gates import Thresholds
from edgehisto.bundle.manifest import Bundle, StageSpec, load_bundle, read_verified
from edgehisto.bundle.preprocess import load_resized, normalize
from edgehisto.errors import EdgehistoError
from edgehisto.runtime.classifier import Classifier

__all__ = ["BenchConfig", "machine_info", "run_bench", "bench_bundle", "no_progress"]

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


def no_progress(_line: str) -> None:
    """The default progress callback of bench functions: say nothing (the CLI passes stderr)."""


@dataclass(frozen=True)
class BenchConfig:
    """What one bench run measures and how much."""
    repeats: int = 50
    batch: int = 32
    limit: int = 512
    process_repeats: int = 3
    profile_runs: int = 20
    keras_repeats: int = 25  # Keras predict is 5-60x slower: fewer samples (5 rounds) keep the run short


def missing_files(kind: str, bundle: Bundle, stage: StageSpec) -> str | None:
    """Why a variant cannot run here (its file is not shipped, or its engine is not installed), or None."""
    if kind == "keras_fp32":
        relative, engine = stage.reference_keras, "keras"
    elif kind.startswith("tflite"):
        relative, engine = stage.files.get(f"tflite_{kind.split('_')[1]}"), "ai_edge_litert"
    else:
        return None
    if relative is None or not bundle.file(relative).is_file():
        return f"{relative or kind} is not in this bundle (a runtime bundle ships ONNX only)"
    if not installed(engine):
        return f'{engine} is not installed (pip install "edgehisto[train]")'
    return None


def _accuracy(probs: np.ndarray, labels: np.ndarray, keras: np.ndarray | None, fp32: np.ndarray) -> dict:
    """Metrics and top-1 agreement on the tiles the stage applies to (label >= 0).

    numpy only, so that a runtime-only install (no scikit-learn) can bench its ONNX variants.
    Balanced accuracy and macro-F1 average over the classes present in the labels.
    """
    rows = labels >= 0  # as the export's parity gate: agreement on the tiles the stage applies to

    def agreement(reference: np.ndarray | None) -> float | None:
        if reference is None or not rows.any():
            return None
        return float(np.mean(probs[rows].argmax(1) == reference[rows].argmax(1)))

    agree = {"agreement_with_keras": agreement(keras), "agreement_with_onnx_fp32": agreement(fp32)}
    truth, predicted = labels[rows], probs[rows].argmax(1)
    present = np.unique(truth)
    recalls = [float(np.mean(predicted[truth == c] == c)) for c in present]
    f1s = []
    for c in present:
        tp = np.sum((predicted == c) & (truth == c))
        denominator = np.sum(predicted == c) + np.sum(truth == c)
        f1s.append(float(2 * tp / denominator) if denominator else 0.0)
    return {"accuracy": float(np.mean(predicted == truth)) if len(truth) else None,
            "balanced_accuracy": float(np.mean(recalls)) if recalls else None,
            "macro_f1": float(np.mean(f1s)) if f1s else None, **agree, "n_labelled": int(rows.sum())}


def _timed(calls: dict[str, Callable[[], object]], config: BenchConfig, keras: bool = False) -> dict[str, dict]:
    """``interleaved`` with the run's repeats, fewer for a table with Keras ``predict`` (10-60x slower)."""
    repeats = min(config.keras_repeats, config.repeats) if keras else config.repeats
    # bursts of 5, as the tuning tables use: LiteRT's worker threads sleep between calls and the
    # first call of a burst pays their wake-up, so the burst length must not differ between reports
    return interleaved(calls, repeats, burst=min(5, repeats))


def bench_stage(bundle: Bundle, stage: StageSpec, x: np.ndarray, labels: np.ndarray, config: BenchConfig,
                log: Callable[[str], None]) -> dict:
    """All variants of one stage: accuracy, batch-1 latency at all threads and at 1, throughput, size."""
    rows, variants, one, batch = {}, {}, x[:1], x[: config.batch]
    for kind in VARIANTS:
        why = missing_files(kind, bundle, stage)
        if why:
            rows[kind] = {"skipped": why}
            continue
        variants[kind] = make_variant(kind, bundle, stage, threads=None)
    log(f"  {stage.name}: accuracy of {', '.join(variants)} on {len(x)} tiles")
    probs = {kind: v.predict(x) for kind, v in variants.items()}
    keras = probs.get("keras_fp32")
    for kind, variant in variants.items():
        rows[kind] = {"size_mb": sum(p.stat().st_size for p in variant.files()) / 1e6,
                      **_accuracy(probs[kind], labels, keras, probs["onnx_fp32"])}
    log(f"  {stage.name}: batch-1 latency, interleaved rounds")
    # ONNX and TFLite in one table at full repeats; Keras against ONNX int8 in its own, shorter one
    engines = {kind: v for kind, v in variants.items() if kind != "keras_fp32"}
    calls = {kind: (lambda v=v: v.predict(one)) for kind, v in engines.items()}
    calls |= {f"{kind}+gradcam": (lambda v=v: v.gradcam(one)) for kind, v in engines.items() if kind.startswith("onnx")}
    timed = _timed(calls, config)
    if {"onnx_int8", "tflite_int8"} <= set(variants):  # the verdict's pair alone: one thread pool of each
        pair = _timed({kind: (lambda v=variants[kind]: v.predict(one)) for kind in ("onnx_int8", "tflite_int8")},
                      config)
        rows["onnx_int8"]["latency_vs_tflite"], rows["tflite_int8"]["latency_vs_onnx"] = (
            pair["onnx_int8"], pair["tflite_int8"])
    if "keras_fp32" in variants:
        versus = _timed({kind: (lambda v=variants[kind]: v.predict(one)) for kind in ("keras_fp32", "onnx_int8")},
                        config, keras=True)
        timed["keras_fp32"] = versus["keras_fp32"]
        rows["onnx_int8"]["latency_vs_keras"] = versus["onnx_int8"]
    single = {kind: make_variant(kind, bundle, stage, threads=1) for kind in engines}
    timed_1 = _timed({kind: (lambda v=v: v.predict(one)) for kind, v in single.items()}, config)
    for kind, variant in variants.items():
        row = rows[kind]
        row["latency_all_threads"] = timed[kind]
        if kind in timed_1:  # TF's thread pools are fixed at start-up: one setting per process
            row["latency_1_thread"] = timed_1[kind]
        if f"{kind}+gradcam" in timed:
            row["gradcam_latency"] = timed[f"{kind}+gradcam"]
            row["gradcam_cost_ratio"] = timed[f"{kind}+gradcam"]["median_ms"] / timed[kind]["median_ms"]
        row["throughput_tiles_per_s"] = throughput(lambda v=variant: v.predict(batch), len(batch),  # sequential
                                                   max(2, config.repeats // 10))
    return rows


def stage_roofline(bundle: Bundle, stage: StageSpec, x1: np.ndarray, config: BenchConfig) -> dict:
    """Per precision: the backbone's MACs, its batch-1 latency, the achieved fraction of this machine's
    GEMM peak, and onnxruntime's operator profile (where the time goes).

    The peak GEMMs are timed in the same rounds as the backbones, so load shifts both alike.
    """
    if not installed("onnx"):
        return {"skipped": 'counting operations needs onnx (pip install "edgehisto[train]")'}
    macs = model_macs(read_verified(bundle, stage.backbone("fp32")), bundle.preprocess.input_size)
    sessions = {p: Classifier(bundle, precision=p, allow_failed_parity=True) for p in ("fp32", "int8")}
    gemms = {p: gemm_call(p) for p in ("fp32", "int8")}
    calls = {p: (lambda c=c: c.activations(x1, stage)) for p, c in sessions.items()}
    calls |= {f"gemm_{p}": call for p, (call, _) in gemms.items()}
    timed = _timed(calls, config)
    result = {"macs": macs["macs"], "gmac": macs["macs"] / 1e9, "uncounted_nodes": macs["uncounted"]}
    for precision in sessions:
        achieved = 2.0 * macs["macs"] / (timed[precision]["median_ms"] / 1000.0)
        peak = gemms[precision][1] / (timed[f"gemm_{precision}"]["median_ms"] / 1000.0)
        profile = operator_profile(read_verified(bundle, stage.backbone(precision)), x1, runs=config.profile_runs)
        result[precision] = {"backbone_latency": timed[precision], "gemm_latency": timed[f"gemm_{precision}"],
                             "achieved_gops": achieved / 1e9, "peak_gops": peak / 1e9,
                             "fraction_of_peak": achieved / peak, "profile": profile}
    return result


def _stages_that_ran(clf: Classifier, x1: np.ndarray) -> list[StageSpec]:
    return [clf.stages[s.stage] for s in clf.classify_tensor(x1)[0].stages]


def _stage_calls_only(clf: Classifier, x1: np.ndarray, stages: list[StageSpec]) -> Callable[[], None]:
    """Exactly the session runs that classify made for one tile (a shared backbone once): the floor."""
    runs, activations = [], {}
    for stage in stages:
        backbone = stage.backbone(clf.precision)
        if backbone not in activations:  # a shared (multitask) backbone runs once, as in classify
            session = clf.session(backbone, "backbone", stage)
            runs.append((session, [tensors.ACTIVATIONS], {tensors.IMAGE: x1}))
            activations[backbone] = session.run([tensors.ACTIVATIONS], {tensors.IMAGE: x1})[0]
        head = clf.session(stage.files["head"], "head", stage)
        runs.append((head, [tensors.LOGITS, tensors.PROBABILITIES], {tensors.ACTIVATIONS: activations[backbone]}))

    def call() -> None:
        for session, outputs, feeds in runs:
            session.run(outputs, feeds)
    return call


def bench_routed(bundle: Bundle, x: np.ndarray, labels: np.ndarray, image: Path, config: BenchConfig,
                 log: Callable[[str], None]) -> dict:
    """End to end: Keras (reference models in turn) vs the runtime at fp32 and int8, batch 1.

    For each precision, three calls are timed together: ``classify`` of the image file (decode,
    resize, stages), the same from the preprocessed tensor, and only the session runs of the stages
    that ran (the floor). Their ratios say where routed time goes outside the models.
    """
    from edgehisto.datasets.tasks import END_TO_END_CLASSES, TASKS, routed_labels

    task = TASKS[bundle.task]
    classes = END_TO_END_CLASSES[task.name]
    rows, calls = {}, {}
    if all(missing_files("keras_fp32", bundle, s) is None for s in bundle.stages.values()):
        keras_stages = {name: make_variant("keras_fp32", bundle, s, None) for name, s in bundle.stages.items()}
        reference = routed_labels(task, {n: v.predict(x).argmax(1) for n, v in keras_stages.items()})
        one_model = len({s.reference_keras for s in bundle.stages.values()}) == 1

        def keras_one():  # what a Keras user runs per image: each model on the route, in turn
            stage = bundle.entry_stage
            while stage is not None:
                label = keras_stages[stage].predict(x[:1]).argmax(1)[0]
                # one multitask predict computes the shared backbone, which is nearly all of the work
                routes = {} if one_model else bundle.routing.get(stage, {})
                stage = routes.get(bundle.stages[stage].class_names[label])
        rows["keras_fp32"] = {"accuracy": float(np.mean(reference == labels)), "agreement_with_keras": 1.0}
    else:
        reference = None
        rows["keras_fp32"] = {"skipped": "the Keras reference is not in this bundle"}
    x1 = x[:1]
    for precision in ("fp32", "int8"):
        clf = Classifier(bundle, precision=precision, allow_failed_parity=True)
        # a tile refused as non-finite has no label: -1, counted wrong
        predicted = np.array([classes.index(r.stages[-1].label) if r.stages else -1 for r in clf.classify_tensor(x)])
        ran = _stages_that_ran(clf, x1)
        rows[f"onnx_{precision}"] = {
            "accuracy": float(np.mean(predicted == labels)),
            "agreement_with_keras": None if reference is None else float(np.mean(predicted == reference)),
            "stages_ran": [s.name for s in ran]}
        calls[f"onnx_{precision}"] = lambda c=clf: c.classify_tensor(x1)
        calls[f"onnx_{precision}: file"] = lambda c=clf: c.classify_paths([image])
        calls[f"onnx_{precision}: stages only"] = _stage_calls_only(clf, x1, ran)
    log(f"  routed end to end: {', '.join(calls)}")
    timed = _timed(calls, config)
    for name, stats in timed.items():
        kind, _, part = name.partition(": ")
        key = {"": "latency_all_threads", "file": "latency_file", "stages only": "latency_stages_only"}[part]
        rows[kind][key] = stats
    if reference is not None:
        log("  routed end to end: Keras predict vs ONNX int8")
        versus = _timed({"keras_fp32": keras_one, "onnx_int8": calls["onnx_int8"]}, config, keras=True)
        rows["keras_fp32"]["latency_all_threads"] = versus["keras_fp32"]
        rows["onnx_int8"]["latency_vs_keras"] = versus["onnx_int8"]
    return rows


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


def evaluate_targets(result: dict, isa: str, thresholds: Thresholds | None = None) -> list[dict]:
    """The performance issue's targets, judged from this run's numbers, for this machine's ISA class."""
    thresholds = thresholds or Thresholds()
    targets = []
    routed = result.get("routed")
    for stage, rows in result["stages"].items():
        measured = {k: r for k, r in rows.items() if "skipped" not in r}
        lat = {k: r["latency_all_threads"] for k, r in measured.items()}
        if {"onnx_int8", "tflite_int8"} <= set(lat):
            targets.append(ratio_target(f"{stage}: ONNX int8 / TFLite int8 latency (both on all cores)",
                                        measured["onnx_int8"]["latency_vs_tflite"],
                                        measured["tflite_int8"]["latency_vs_onnx"], 1.0, "<=", isa,
                                        "the two timed alone together"))
        if not routed and {"onnx_int8", "keras_fp32"} <= set(lat):  # a hierarchy is judged end to end below
            targets.append(ratio_target(f"{stage}: Keras predict / ONNX int8 latency", lat["keras_fp32"],
                                        measured["onnx_int8"]["latency_vs_keras"], 20.0, ">=", isa))
        for kind in ("onnx_int8", "tflite_int8"):
            if kind not in measured:
                continue
            row, against = measured[kind], "keras" if "keras_fp32" in measured else "onnx_fp32"
            targets.append(value_target(f"{stage}: {kind} top-1 agreement with {against} (the int8 parity gate)",
                                        row[f"agreement_with_{against}"], thresholds.int8_min_agreement, ">=", isa,
                                        "a faster int8 that disagrees with its reference is not a win"))
            if "keras_fp32" in measured:
                accuracies = measured["keras_fp32"]["accuracy"], row["accuracy"]
                drop = None if None in accuracies else 100 * (accuracies[0] - accuracies[1])
                targets.append(value_target(f"{stage}: {kind} accuracy drop (points)", drop,
                                            100 * thresholds.int8_max_accuracy_drop, "<=", isa,
                                            "a negative drop is a gain from int8 rounding, not a feature"))
        roof = result["roofline"].get(stage, {})
        if "int8" in roof:
            targets.append(value_target(f"{stage}: ONNX int8 backbone, fraction of the int8 GEMM peak",
                                        roof["int8"]["fraction_of_peak"], 0.30, ">=", isa))
    if routed:
        int8 = routed["onnx_int8"]
        if "latency_all_threads" in routed["keras_fp32"]:
            targets.append(ratio_target("routed: Keras predict / ONNX int8 classify latency",
                                        routed["keras_fp32"]["latency_all_threads"], int8["latency_vs_keras"],
                                        20.0, ">=", isa))
        targets.append(ratio_target("routed: ONNX int8 classify (tensor) / its stages' session runs",
                                    int8["latency_all_threads"], int8["latency_stages_only"], 1.2, "<=", isa))
        targets.append(ratio_target("routed: ONNX int8 classify (image file) / its stages' session runs",
                                    int8["latency_file"], int8["latency_stages_only"], 1.2, "<=", isa,
                                    "includes decoding and resizing the image"))
    cold = result["process"]["classify_int8"]
    ran = cold["exit_codes"] == [0]
    note = "median of runs" if ran else f"classify exited {cold['exit_codes']}: not a measurement"
    limit = 1.0 if result["routing"] else 0.3  # the limits: a hierarchy 1.0 s, the IDC default 0.3 s
    targets.append(value_target("cold `edgehisto classify image` (s, whole process)", cold["seconds"] if ran else None,
                                limit, "<=", isa, note))
    targets.append(value_target("peak RSS of classify (MB)", cold["peak_rss_mb"] if ran else None, 250.0, "<=",
                                isa, note))
    return targets


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
    timed = _timed({k: (lambda c=c: c.classify_tensor(x1)) for k, c in classifiers.items()}, config)
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
