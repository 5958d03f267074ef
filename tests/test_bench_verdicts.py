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


def test_model_macs_counts_conv_and_matmul_exactly():
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from edgehisto.bench.roofline import model_macs

    conv_w = numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "W")
    fc_w = numpy_helper.from_array(np.zeros((8 * 16 * 16, 5), np.float32), "F")
    shape = numpy_helper.from_array(np.array([-1, 8 * 16 * 16], np.int64), "S")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Reshape", ["c", "S"], ["r"]), helper.make_node("MatMul", ["r", "F"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 5])], [conv_w, fc_w, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    counted = model_macs(model.SerializeToString())
    assert counted["per_op"] == {"Conv": 8 * 16 * 16 * 3 * 3 * 3, "MatMul": 8 * 16 * 16 * 5}
    assert counted["macs"] == 8 * 16 * 16 * 27 + 8 * 16 * 16 * 5
    assert onnx is not None


def test_gemm_peak_and_operator_profile_measure_real_sessions():
    pytest.importorskip("onnx")
    from edgehisto.bench.roofline import _gemm_model, gemm_peak, operator_profile

    peak = gemm_peak("int8", size=256, repeats=3)
    assert peak["ops_per_s"] == pytest.approx(2 * 256 ** 3 / (peak["median_ms"] / 1000))
    x = np.random.default_rng(0).standard_normal((64, 64), dtype=np.float32)
    profile = operator_profile(_gemm_model("fp32", 64, 64, 64), x, runs=3)
    assert [op["op"] for op in profile["ops"]] == ["MatMul"] and profile["ops"][0]["share"] == pytest.approx(1.0)
