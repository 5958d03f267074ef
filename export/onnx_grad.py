"""Exact Grad-CAM gradients in plain ONNX: reverse-mode differentiation of the head graph.

Design note
-----------
tf2onnx cannot convert a GradientTape graph (``ReluGrad``, ``MaxPoolGrad``, ``DynamicStitch``
have no ONNX handlers), and onnxruntime's inference build has no autodiff. So export splits
each model at the Grad-CAM target layer into

* a **backbone** (image -> target activations A), converted by tf2onnx and, for int8,
  quantised by onnxruntime; and
* a **head** (A -> pre-activation class scores), converted by tf2onnx and kept fp32.

This module walks the converted head graph backwards and emits, for each node on the path from
A to the scores, the ONNX nodes of its vector-Jacobian product (``Relu`` -> mask, ``MatMul`` ->
``MatMul`` with W^T, ``MaxPool`` -> its argmax ``Indices`` + ``ScatterElements``, ...). The
result is a graph ``(activations, seed) -> gradient`` computing d(seed . scores)/dA with the
same arithmetic TensorFlow's gradient uses, so it is exact, not an approximation (the parity
gate checks it against GradientTape). Because the gradient takes A as an input, it works
unchanged when the backbone that produced A is int8: the map is then the exact Grad-CAM of the
model that actually ran (int8 backbone + fp32 head).

An op without a rule raises ``ExportError`` naming it, rather than producing a wrong map.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

from edgehisto.bundle import tensors
from edgehisto.errors import ExportError

ACTIVATIONS, SEED, GRADIENT = tensors.ACTIVATIONS, tensors.SEED, tensors.GRADIENT


class _Builder:
    """Collects the backward nodes and constants while the graph is walked in reverse."""

    def __init__(self, graph: onnx.GraphProto):
        inferred = graph
        self.shapes = {
            info.name: [d.dim_value if d.HasField("dim_value") else None
                        for d in info.type.tensor_type.shape.dim]
            for info in list(inferred.value_info) + list(inferred.input) + list(inferred.output)
        }
        self.consts = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"grad/{hint}_{self._count}"

    def const(self, value: np.ndarray, hint: str) -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, **attrs) -> list[str]:
        outputs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, **attrs))
        return outputs

    def unbroadcast(self, grad: str, target: str, output: str) -> str:
        """Sum a gradient over the axes numpy-style broadcasting expanded from ``target``."""
        out_shape, in_shape = self.shapes.get(output), self.shapes.get(target)
        if out_shape is None or in_shape is None:
            raise ExportError(f"unknown shape for broadcast gradient of {target!r}")
        if in_shape == out_shape:
            return grad
        padded = [1] * (len(out_shape) - len(in_shape)) + list(in_shape)
        axes = [i for i, (a, b) in enumerate(zip(padded, out_shape, strict=True)) if a == 1 and b != 1]
        summed = self.op("ReduceSum", [grad, self.const(np.array(axes, np.int64), "axes")], keepdims=1)[0]
        return self.op("Reshape", [summed, self.op("Shape", [target])[0]])[0]


def _attr(node: onnx.NodeProto, name: str, default=None):
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


# Each rule: (builder, node, grad of node.output[0], active inputs) -> {input name: grad name}
Rule = Callable[[_Builder, onnx.NodeProto, str, set], dict]


def _identity(b, node, g, active):
    return {node.input[0]: g}


def _relu(b, node, g, active):
    # TF's ReluGrad passes the gradient where the *output* is > 0; zero elsewhere.
    zero = b.const(np.zeros((), np.float32), "zero")
    positive = b.op("Greater", [node.output[0], zero])[0]
    return {node.input[0]: b.op("Where", [positive, g, zero])[0]}


def _add(b, node, g, active, sign_of_second: float = 1.0):
    grads = {}
    if node.input[0] in active:
        grads[node.input[0]] = b.unbroadcast(g, node.input[0], node.output[0])
    if node.input[1] in active:
        second = g if sign_of_second > 0 else b.op("Neg", [g])[0]
        grads[node.input[1]] = b.unbroadcast(second, node.input[1], node.output[0])
    return grads


def _sub(b, node, g, active):
    return _add(b, node, g, active, sign_of_second=-1.0)


def _mul(b, node, g, active):
    a, c = node.input[0], node.input[1]
    grads = {}
    if a in active:
        grads[a] = b.unbroadcast(b.op("Mul", [g, c])[0], a, node.output[0])
    if c in active:
        grads[c] = b.unbroadcast(b.op("Mul", [g, a])[0], c, node.output[0])
    return grads


def _div(b, node, g, active):
    if node.input[1] in active:
        raise ExportError("Div by an activation-dependent tensor has no gradient rule")
    return {node.input[0]: b.unbroadcast(b.op("Div", [g, node.input[1]])[0], node.input[0], node.output[0])}


def _matmul(b, node, g, active):
    x, w = node.input
    if w in active or w not in b.consts or b.consts[w].ndim != 2:
        raise ExportError("MatMul gradient supports a constant 2-D right operand only")
    return {x: b.op("MatMul", [g, b.const(b.consts[w].T.copy(), "weight_t")])[0]}


def _gemm(b, node, g, active):
    if _attr(node, "transA", 0) or node.input[1] in active:
        raise ExportError("Gemm gradient supports transA=0 and a constant B only")
    w = b.consts[node.input[1]]
    w = w if _attr(node, "transB", 0) else w.T
    scaled = w * np.float32(_attr(node, "alpha", 1.0))
    return {node.input[0]: b.op("MatMul", [g, b.const(scaled.astype(np.float32), "weight_t")])[0]}


def _transpose(b, node, g, active):
    inverse = np.argsort(_attr(node, "perm")).tolist()
    return {node.input[0]: b.op("Transpose", [g], perm=inverse)[0]}


def _reshape_like_input(b, node, g, active):
    return {node.input[0]: b.op("Reshape", [g, b.op("Shape", [node.input[0]])[0]])[0]}


def _mean_over(b, node, g, reduced_axes: list[int]):
    shape = b.shapes[node.input[0]]
    count = int(np.prod([shape[a] for a in reduced_axes]))
    spread = b.op("Expand", [g, b.op("Shape", [node.input[0]])[0]])[0]
    return {node.input[0]: b.op("Mul", [spread, b.const(np.float32(1.0 / count), "inv_count")])[0]}


def _global_average_pool(b, node, g, active):
    return _mean_over(b, node, g, list(range(2, len(b.shapes[node.input[0]]))))


def _reduce_mean(b, node, g, active):
    rank = len(b.shapes[node.input[0]])
    axes = _attr(node, "axes")
    if axes is None and len(node.input) > 1:
        axes = b.consts[node.input[1]].tolist()
    axes = [a % rank for a in (axes if axes is not None else range(rank))]
    if not _attr(node, "keepdims", 1):
        g = b.op("Unsqueeze", [g, b.const(np.array(axes, np.int64), "axes")])[0]
    return _mean_over(b, node, g, axes)


def _max_pool(b, node, g, active):
    # Route each output gradient to its window's argmax, as TF's MaxPoolGrad does: recompute
    # the pool with its Indices output (flat indices into the whole NCHW tensor) and scatter.
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    _, indices = b.op("MaxPool", [node.input[0]], n_out=2, **attrs)
    flat = b.const(np.array([-1], np.int64), "flat")
    zeros = b.op("Reshape", [b.op("Mul", [node.input[0], b.const(np.float32(0), "zero")])[0], flat])[0]
    scattered = b.op(
        "ScatterElements",
        [zeros, b.op("Reshape", [indices, flat])[0], b.op("Reshape", [g, flat])[0]],
        axis=0, reduction="add",
    )[0]
    return {node.input[0]: b.op("Reshape", [scattered, b.op("Shape", [node.input[0]])[0]])[0]}


def _batch_norm(b, node, g, active):
    scale, _, _, var = (b.consts[name] for name in node.input[1:5])
    factor = scale / np.sqrt(var + np.float32(_attr(node, "epsilon", 1e-5)))
    rank = len(b.shapes[node.input[0]])
    factor = factor.reshape([-1] + [1] * (rank - 2)).astype(np.float32)
    return {node.input[0]: b.op("Mul", [g, b.const(factor, "bn_factor")])[0]}


def _conv(b, node, g, active):
    # d/dX of a convolution is the transposed convolution with the same weights and geometry.
    if node.input[1] in active or _attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise ExportError("Conv gradient supports constant weights and explicit pads only")
    weights = b.consts[node.input[1]]
    rank = weights.ndim - 2
    strides = list(_attr(node, "strides", [1] * rank))
    dilations = list(_attr(node, "dilations", [1] * rank))
    pads = list(_attr(node, "pads", [0] * 2 * rank))
    in_shape, out_shape = b.shapes[node.input[0]], b.shapes[node.output[0]]
    output_padding = [
        in_shape[2 + i] - ((out_shape[2 + i] - 1) * strides[i] - pads[i] - pads[rank + i]
                           + dilations[i] * (weights.shape[2 + i] - 1) + 1)
        for i in range(rank)
    ]
    grad = b.op("ConvTranspose", [g, node.input[1]], strides=strides, dilations=dilations, pads=pads,
                group=int(_attr(node, "group", 1)), output_padding=output_padding)[0]
    return {node.input[0]: grad}


def _average_pool(b, node, g, active):
    kernel, strides = list(_attr(node, "kernel_shape")), list(_attr(node, "strides", [1, 1]))
    if kernel != strides or any(_attr(node, "pads", [0] * 4)):
        raise ExportError("AveragePool gradient supports non-overlapping windows without padding only")
    channels = b.shapes[node.input[0]][1]
    spread = np.full((channels, 1, *kernel), 1.0 / float(np.prod(kernel)), np.float32)
    grad = b.op("ConvTranspose", [g, b.const(spread, "avgpool_spread")], strides=strides, group=channels)[0]
    return {node.input[0]: grad}


def _concat(b, node, g, active):
    rank = len(b.shapes[node.output[0]])
    axis = _attr(node, "axis") % rank
    grads, offset = {}, 0
    for name in node.input:
        size = b.shapes[name][axis]
        if name in active:
            starts, ends, axes = (b.const(np.array([v], np.int64), "slice") for v in (offset, offset + size, axis))
            grads[name] = b.op("Slice", [g, starts, ends, axes])[0]
        offset += size
    return grads


RULES: dict[str, Rule] = {
    "Conv": _conv, "AveragePool": _average_pool, "Concat": _concat,
    "Identity": _identity, "Dropout": _identity, "Relu": _relu, "Add": _add, "Sub": _sub,
    "Mul": _mul, "Div": _div, "MatMul": _matmul, "Gemm": _gemm, "Transpose": _transpose,
    "Reshape": _reshape_like_input, "Flatten": _reshape_like_input,
    "Squeeze": _reshape_like_input, "Unsqueeze": _reshape_like_input,
    "GlobalAveragePool": _global_average_pool, "ReduceMean": _reduce_mean,
    "MaxPool": _max_pool, "BatchNormalization": _batch_norm,
}


def _active_nodes(graph: onnx.GraphProto, source: str) -> tuple[list[onnx.NodeProto], set[str]]:
    """Nodes (in topological order) whose output depends on ``source``, and those tensors."""
    active, nodes = {source}, []
    for node in graph.node:
        if any(name in active for name in node.input):
            nodes.append(node)
            active.update(node.output)
    return nodes, active


def build_gradient_model(head: onnx.ModelProto) -> onnx.ModelProto:
    """Return ``(activations, seed) -> gradient``, the exact d(seed . head(A))/dA.

    Args:
        head: an ONNX graph with one input (the target-layer activations) and one output
            (the pre-activation class scores, shape (N, K)).
    """
    head = shape_inference.infer_shapes(head)
    graph = head.graph
    source, target = graph.input[0].name, graph.output[0].name
    builder = _Builder(graph)
    nodes, active = _active_nodes(graph, source)
    grads: dict[str, str] = {target: SEED}
    for node in reversed(nodes):
        g = grads.get(node.output[0])
        if g is None:
            continue
        rule = RULES.get(node.op_type)
        if rule is None:
            raise ExportError(f"no gradient rule for ONNX op {node.op_type!r} in the Grad-CAM head")
        for name, grad in rule(builder, node, g, active).items():
            if name not in active:
                continue  # constants (weights) need no gradient
            grads[name] = builder.op("Add", [grads[name], grad])[0] if name in grads else grad
    if source not in grads:
        raise ExportError("the class scores do not depend on the Grad-CAM target layer")
    final = helper.make_node("Identity", [grads[source]], [GRADIENT])
    act_info = helper.make_tensor_value_info(ACTIVATIONS, TensorProto.FLOAT, None)
    act_info.type.CopyFrom(graph.input[0].type)
    seed_info = helper.make_tensor_value_info(SEED, TensorProto.FLOAT, None)
    seed_info.type.CopyFrom(graph.output[0].type)
    grad_info = helper.make_tensor_value_info(GRADIENT, TensorProto.FLOAT, None)
    grad_info.type.CopyFrom(graph.input[0].type)
    renamed = [_rename_input(n, source, ACTIVATIONS) for n in list(graph.node) + builder.nodes + [final]]
    out = helper.make_graph(
        renamed, "gradcam_gradient", [act_info, seed_info], [grad_info],
        initializer=list(graph.initializer) + builder.initializers,
    )
    model = helper.make_model(out, opset_imports=head.opset_import, producer_name="edgehisto")
    model.ir_version = head.ir_version
    onnx.checker.check_model(model)
    return model


def _rename_input(node: onnx.NodeProto, old: str, new: str) -> onnx.NodeProto:
    if old == new or old not in node.input:
        return node
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    for i, name in enumerate(copy.input):
        if name == old:
            copy.input[i] = new
    return copy
