"""One bundle stage benched: every variant's accuracy, latency, throughput and size, and its roofline."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgehisto.bench.config import BenchConfig, timed_together
from edgehisto.bench.machine import installed
from edgehisto.bench.roofline import gemm_call, model_macs, operator_profile
from edgehisto.bench.timing import throughput
from edgehisto.bench.variants import VARIANTS, make_variant
from edgehisto.bundle.manifest import Bundle, StageSpec, read_verified
from edgehisto.runtime.classifier import Classifier


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
    timed = timed_together(calls, config)
    if {"onnx_int8", "tflite_int8"} <= set(variants):  # the verdict's pair alone: one thread pool of each
        pair = timed_together({kind: (lambda v=variants[kind]: v.predict(one))
                               for kind in ("onnx_int8", "tflite_int8")}, config)
        rows["onnx_int8"]["latency_vs_tflite"], rows["tflite_int8"]["latency_vs_onnx"] = (
            pair["onnx_int8"], pair["tflite_int8"])
    if "keras_fp32" in variants:
        versus = timed_together({kind: (lambda v=variants[kind]: v.predict(one))
                                 for kind in ("keras_fp32", "onnx_int8")}, config, keras=True)
        timed["keras_fp32"] = versus["keras_fp32"]
        rows["onnx_int8"]["latency_vs_keras"] = versus["onnx_int8"]
    single = {kind: make_variant(kind, bundle, stage, threads=1) for kind in engines}
    timed_1 = timed_together({kind: (lambda v=v: v.predict(one)) for kind, v in single.items()}, config)
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
    timed = timed_together(calls, config)
    result = {"macs": macs["macs"], "gmac": macs["macs"] / 1e9, "uncounted_nodes": macs["uncounted"]}
    for precision in sessions:
        achieved = 2.0 * macs["macs"] / (timed[precision]["median_ms"] / 1000.0)
        peak = gemms[precision][1] / (timed[f"gemm_{precision}"]["median_ms"] / 1000.0)
        profile = operator_profile(read_verified(bundle, stage.backbone(precision)), x1, runs=config.profile_runs)
        result[precision] = {"backbone_latency": timed[precision], "gemm_latency": timed[f"gemm_{precision}"],
                             "achieved_gops": achieved / 1e9, "peak_gops": peak / 1e9,
                             "fraction_of_peak": achieved / peak, "profile": profile}
    return result
