"""Keras -> ONNX: split a model at its Grad-CAM layer and convert both halves with tf2onnx."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import onnx
import tensorflow as tf
import tf2onnx

from edgehisto.errors import ExportError
from edgehisto.export.converter_output import quiet_converter

OPSET = 17  # ScatterElements(reduction="add") in the gradient graph needs >= 16


@dataclass
class SplitModels:
    """A stage's Keras model cut at the Grad-CAM layer."""

    backbone: keras.Model  # image -> activations
    head: keras.Model  # activations -> [logits, probabilities]
    activations_shape: tuple[int, int, int]


def split_at(model: keras.Model, layer_name: str, logits: str = "logits",
             probabilities: str = "probabilities") -> SplitModels:
    """Cut ``model`` into backbone (input -> layer) and head (layer -> logits, probabilities)."""
    try:
        target = model.get_layer(layer_name).output
    except ValueError:
        raise ExportError(f"model {model.name!r} has no layer {layer_name!r}") from None
    backbone = keras.Model(model.input, target, name=f"{model.name}_backbone")
    head = keras.Model(
        target, [model.get_layer(logits).output, model.get_layer(probabilities).output],
        name=f"{model.name}_head",
    )
    return SplitModels(backbone, head, tuple(int(d) for d in target.shape[1:]))


def rename_tensor(model: onnx.ModelProto, old: str, new: str) -> None:
    """Rename a tensor everywhere it appears (node inputs/outputs and graph inputs/outputs)."""
    for node in model.graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
    for value in list(model.graph.input) + list(model.graph.output):
        if value.name == old:
            value.name = new


def to_onnx(model: keras.Model, input_name: str, output_names: list[str]) -> onnx.ModelProto:
    """Convert a single-input Keras model and give its tensors stable names."""
    shape = (None, *model.input.shape[1:])
    signature = (tf.TensorSpec(shape, tf.float32, name=input_name),)
    with quiet_converter():
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=OPSET)
    if proto.graph.input[0].name != input_name:
        rename_tensor(proto, proto.graph.input[0].name, input_name)
    for value, name in zip(list(proto.graph.output), output_names, strict=True):
        if value.name != name:
            rename_tensor(proto, value.name, name)
    proto.producer_name = "edgehisto via tf2onnx"
    onnx.checker.check_model(proto)
    return proto
