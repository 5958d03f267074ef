"""Bench verdicts and the physical-limit measurements: judged from numbers, able to say "missed"."""

from __future__ import annotations

import numpy as np
import pytest

from edgehisto.bench.verdicts import ratio_target, value_target


def _timing(rounds: list[float]) -> dict:
    return {"median_ms": float(np.median(rounds)), "round_medians_ms": rounds}


def test_a_ratio_target_is_met_only_when_the_rounds_agree_with_the_median():
    fast, slow = _timing([1.0] * 10), _timing([3.0] * 10)
    assert ratio_target("t", slow, fast, 2.0, ">=", "AVX2")["verdict"] == "met"
    assert ratio_target("t", fast, slow, 2.0, ">=", "AVX2")["verdict"] == "missed"
    mixed = _timing([1.0, 1.0, 1.0, 1.0, 1.0, 3.0, 3.0, 3.0, 3.0, 3.0])
    verdict = ratio_target("t", mixed, _timing([1.1] * 10), 1.0, "<=", "AVX2")
    assert verdict["verdict"] == "within noise" and verdict["rounds"] == "5/10" and not verdict["met"]


def test_a_ratio_within_five_percent_of_its_line_is_noise_not_a_verdict():
    a, b = _timing([1.0] * 10), _timing([1.03] * 10)
    assert ratio_target("t", a, b, 1.0, "<=", "AVX2")["verdict"] == "within noise"


def test_value_targets_say_met_missed_or_not_measured():
    assert value_target("agreement", 0.9375, 0.97, ">=", "AVX2")["verdict"] == "missed"
    assert value_target("agreement", 0.99, 0.97, ">=", "AVX2")["met"]
    assert value_target("agreement", None, 0.97, ">=", "AVX2")["verdict"] == "not measured"


def test_isa_class_names_the_best_int8_feature():
    from edgehisto.bench.machine import isa_class

    assert isa_class({"avx2", "fma", "avx512f", "avx512bw", "avx512_vnni"}) == "AVX-512 VNNI"
    assert isa_class({"avx2", "fma"}) == "AVX2"
    assert isa_class({"asimd", "asimddp"}) == "ARMv8.2 dot product"
    assert isa_class(set()) == "unknown"


def _graph(nodes, inputs, outputs, initializers):
    from onnx import helper

    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, initializers),
                              opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def test_model_macs_counts_conv_groups_matmul_and_gemm_exactly():
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from edgehisto.bench.roofline import model_macs

    weights = [numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "W"),  # 3x3, 3 -> 8 channels
               numpy_helper.from_array(np.zeros((8, 2, 1, 1), np.float32), "G"),  # 1x1, 4 groups of 2
               numpy_helper.from_array(np.array([-1, 8 * 16 * 16], np.int64), "S"),
               numpy_helper.from_array(np.zeros((8 * 16 * 16, 5), np.float32), "F"),
               numpy_helper.from_array(np.zeros((7, 5), np.float32), "T")]  # Gemm with transB: 5 -> 7
    model = _graph(
        [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Conv", ["c", "G"], ["g"], group=4),
         helper.make_node("Reshape", ["g", "S"], ["r"]), helper.make_node("MatMul", ["r", "F"], ["m"]),
         helper.make_node("Gemm", ["m", "T"], ["y"], transB=1)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 7])], weights)
    counted = model_macs(model, input_size=(16, 16))
    assert counted["per_op"] == {"Conv": 8 * 16 * 16 * 27 + 8 * 16 * 16 * 2, "MatMul": 8 * 16 * 16 * 5,
                                 "Gemm": 5 * 7}
    assert counted["uncounted"] == []
    # without the input size the spatial dimensions stay unknown: counted as such, never guessed as 1
    assert model_macs(model)["uncounted"] != []


def test_operator_profile_drops_the_warm_up_runs_and_sums_per_operator():
    pytest.importorskip("onnx")
    from edgehisto.bench.roofline import _gemm_model, operator_profile

    x = np.random.default_rng(0).standard_normal((64, 64), dtype=np.float32)
    profile = operator_profile(_gemm_model("fp32", 64, 64, 64), x, runs=5)
    (matmul,) = profile["ops"]
    assert matmul["op"] == "MatMul" and matmul["kernel_calls"] == 5 and matmul["nodes"] == 1
    assert matmul["share"] == pytest.approx(1.0) and profile["total_ms_per_run"] > 0


def _result(exit_codes: list[int], keras_accuracy, int8_accuracy) -> dict:
    timing = {"median_ms": 1.0, "p95_ms": 1.0, "round_medians_ms": [1.0] * 5}
    row = {"latency_all_threads": timing, "accuracy": int8_accuracy, "agreement_with_keras": 1.0,
           "agreement_with_onnx_fp32": 1.0, "latency_vs_keras": timing}
    return {"task": "idc", "routing": False, "roofline": {},
            "stages": {"idc": {"keras_fp32": {"latency_all_threads": timing, "accuracy": keras_accuracy},
                               "onnx_int8": row}},
            "process": {"classify_int8": {"seconds": 0.05, "peak_rss_mb": 50.0, "exit_codes": exit_codes}}}


def test_a_crashed_cold_start_is_not_a_measurement_and_missing_accuracy_is_not_a_drop():
    from edgehisto.bench.targets import evaluate_targets

    targets = {t["target"]: t for t in evaluate_targets(_result([2], None, 0.8), "AVX2")}
    cold = targets["cold `edgehisto classify image` (s, whole process)"]
    assert cold["verdict"] == "not measured" and not cold["met"] and "exited [2]" in cold["note"]
    assert targets["peak RSS of classify (MB)"]["verdict"] == "not measured"
    assert targets["idc: onnx_int8 accuracy drop (points)"]["verdict"] == "not measured"
    fine = {t["target"]: t for t in evaluate_targets(_result([0], 0.8, 0.8), "AVX2")}
    assert fine["cold `edgehisto classify image` (s, whole process)"]["verdict"] == "met"
    assert fine["idc: onnx_int8 accuracy drop (points)"]["value"] == 0.0
