"""The physical limit: this machine's attainable GEMM throughput, a model's operation count, and
where an onnxruntime session spends its time.

- ``gemm_peak``: a large int8 GEMM (``MatMulInteger``, uint8 x int8 -> int32, the U8S8 kernel family
  the runtime's int8 bundles use) and an fp32 one (``MatMul``), each a one-node ONNX graph run by
  onnxruntime with the runtime's session settings. Operations per second count a multiply-add as 2.
- ``model_macs``: multiply-accumulates of one inference, from the fp32 ONNX graph's Conv, MatMul and
  Gemm nodes with shapes inferred at batch 1 (pooling and elementwise work are not counted).
- ``operator_profile``: onnxruntime's own profiler over repeated runs, summed per operator type.

Only onnx (for building and shape inference) and onnxruntime: no TensorFlow.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgehisto.bench.timing import latency_ms
from edgehisto.runtime.sessions import make_session

# Big enough that the kernels, not call overhead, set the time (~2.1 G operations per call), and
# small enough (1 MB int8 / 4 MB fp32 per operand) to finish in well under a second per repeat.
GEMM_SIZE = 1024


def _gemm_model(kind: str, m: int, k: int, n: int) -> bytes:
    """A one-node ONNX graph: Y = A @ B with a constant B; ``kind`` "int8" or "fp32"."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if kind == "int8":
        weight = numpy_helper.from_array(rng.integers(-64, 64, (k, n), dtype=np.int8), "B")
        zero_a = numpy_helper.from_array(np.array(128, np.uint8), "a_zero")
        zero_b = numpy_helper.from_array(np.array(0, np.int8), "b_zero")
        node = helper.make_node("MatMulInteger", ["A", "B", "a_zero", "b_zero"], ["Y"])
        inputs = [helper.make_tensor_value_info("A", TensorProto.UINT8, [m, k])]
        outputs = [helper.make_tensor_value_info("Y", TensorProto.INT32, [m, n])]
        initializers = [weight, zero_a, zero_b]
    elif kind == "fp32":
        weight = numpy_helper.from_array(rng.standard_normal((k, n), dtype=np.float32), "B")
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
        inputs = [helper.make_tensor_value_info("A", TensorProto.FLOAT, [m, k])]
        outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [m, n])]
        initializers = [weight]
    else:
        raise ValueError(f"kind must be int8 or fp32, got {kind!r}")
    graph = helper.make_graph([node], f"gemm_{kind}", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def gemm_call(kind: str, size: int = GEMM_SIZE, threads: int | None = None) -> tuple[Callable[[], object], float]:
    """(a call running one ``size``^3 GEMM of ``kind`` through onnxruntime, its operation count)."""
    session = make_session(_gemm_model(kind, size, size, size), threads)
    rng = np.random.default_rng(1)
    a = (rng.integers(0, 256, (size, size), dtype=np.uint8) if kind == "int8"
         else rng.standard_normal((size, size), dtype=np.float32))
    return (lambda: session.run(None, {"A": a})), 2.0 * size ** 3


def gemm_peak(kind: str, size: int = GEMM_SIZE, repeats: int = 20, threads: int | None = None) -> dict:
    """Attainable GEMM operations per second (2 per multiply-add) of one precision on this machine.

    Returns {"kind", "m", "k", "n", "threads", "median_ms", "ops_per_s", "gops"} from the median repeat.
    Fractions of this peak are best taken from calls timed in the same rounds (``bench.stage``).
    """
    call, ops = gemm_call(kind, size, threads)
    timing = latency_ms(call, repeats)
    per_s = ops / (timing["median_ms"] / 1000.0)
    return {"kind": kind, "m": size, "k": size, "n": size, "threads": threads or 0,
            "median_ms": timing["median_ms"], "ops_per_s": per_s, "gops": per_s / 1e9}


def model_macs(model: Path | bytes, input_size: tuple[int, int] | None = None) -> dict:
    """Multiply-accumulates of one batch-1 inference of an ONNX graph, per operator type.

    Conv: output elements x (input channels / group) x kernel area; MatMul and Gemm: M x K x N.
    The image input's symbolic dimensions are fixed before shape inference: the batch to 1 and,
    given ``input_size`` (height, width), the spatial ones of an NHWC or NCHW input. A Conv, MatMul
    or Gemm whose shapes stay unknown is not counted but listed in ``uncounted``, never guessed.
    """
    import onnx
    from onnx import numpy_helper, shape_inference

    loaded = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model))
    initializers = {w.name for w in loaded.graph.initializer}
    for value in loaded.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        wanted = [1] + [0] * (len(dims) - 1)
        if input_size is not None and len(dims) == 4:  # NHWC (channels last: 3) or NCHW
            nhwc = dims[3].HasField("dim_value") and dims[3].dim_value == 3
            wanted = [1, *input_size, 3] if nhwc else [1, 3, *input_size]
        for dim, size in zip(dims, wanted, strict=True):
            if not dim.HasField("dim_value") and size:
                dim.dim_value = size
    inferred = shape_inference.infer_shapes(loaded)
    shapes = {}
    for value in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
            shapes[value.name] = [d.dim_value for d in dims]
    shapes |= {w.name: list(numpy_helper.to_array(w).shape) for w in inferred.graph.initializer}
    per_op: dict[str, int] = defaultdict(int)
    uncounted = []
    for node in inferred.graph.node:
        if node.op_type == "Conv":
            out, kernel = shapes.get(node.output[0]), shapes.get(node.input[1])
            if out and kernel:
                per_op["Conv"] += int(np.prod(out)) * int(np.prod(kernel[1:]))
            else:
                uncounted.append(node.name or node.output[0])
        elif node.op_type in ("MatMul", "Gemm"):
            a, b = shapes.get(node.input[0]), shapes.get(node.input[1])
            if a and b:
                transposed = node.op_type == "Gemm" and any(
                    attr.name == "transB" and attr.i for attr in node.attribute)
                n = b[-2] if transposed else b[-1]
                per_op[node.op_type] += int(np.prod(a)) * n
            else:
                uncounted.append(node.name or node.output[0])
    return {"macs": int(sum(per_op.values())), "per_op": dict(per_op), "uncounted": uncounted}


def operator_profile(model: Path | bytes, x: np.ndarray, runs: int = 20, threads: int | None = None) -> dict:
    """Where one session's time goes: onnxruntime's profiler over ``runs`` runs of input ``x``.

    Returns {"runs", "total_ms_per_run", "ops": [{"op", "ms_per_run", "share", "nodes"}, ...]} sorted by
    time, with the optimised graph's operator types (e.g. fused QLinearConv, Concat, Transpose).
    """
    with tempfile.TemporaryDirectory() as tmp:
        session = make_session(model, threads, profile_prefix=Path(tmp) / "ort")
        name = session.get_inputs()[0].name
        for _ in range(3):  # warm-up runs are profiled too; they are dropped below by run index
            session.run(None, {name: x})
        for _ in range(runs):
            session.run(None, {name: x})
        events = json.loads(Path(session.end_profiling()).read_text())
    run_events = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    keep_after = run_events[3]["ts"] if len(run_events) > 3 else 0
    time_us: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    nodes: dict[str, set] = defaultdict(set)
    for event in events:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        if event["ts"] < keep_after:
            continue
        op = event.get("args", {}).get("op_name", "?")
        time_us[op] += event["dur"]
        calls[op] += 1
        nodes[op].add(event["name"])
    total = sum(time_us.values()) or 1.0
    ops = [{"op": op, "ms_per_run": us / 1000.0 / runs, "share": us / total, "nodes": len(nodes[op]),
            "kernel_calls": calls[op]}
           for op, us in sorted(time_us.items(), key=lambda item: -item[1])]
    return {"runs": runs, "total_ms_per_run": total / 1000.0 / runs, "ops": ops}
