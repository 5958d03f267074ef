"""The performance issue's targets, judged from one bench run's numbers (``bench/verdicts.py`` judges each)."""

from __future__ import annotations

from edgehisto.bench.verdicts import ratio_target, value_target
from edgehisto.bundle.gates import Thresholds


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
