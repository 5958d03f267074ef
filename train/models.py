"""Model builders and their registry.

Every layer has a deterministic name, so a Grad-CAM target is just a string, and every model
ends in a linear layer named ``logits`` followed by its output activation named
``probabilities``: Grad-CAM differentiates the pre-activation class score (``logits``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
from keras import layers, regularizers

L2 = 1e-4


@dataclass(frozen=True)
class ModelInfo:
    """What export and the runtime need to know about a builder's model."""

    task: str
    output: str  # "sigmoid" (one logit, two classes) or "softmax"
    gradcam_layer: str


def _conv_block(x, filters: int, index: int, separable: bool = False):
    """Conv (or separable conv) -> BN -> ReLU -> 2x2 max-pool, named like the seed's Keras model."""
    suffix = "" if index == 0 else f"_{index}"
    if separable:
        x = layers.SeparableConv2D(
            filters, 3, padding="same", name="separable_conv2d",
            depthwise_regularizer=regularizers.l2(L2), pointwise_regularizer=regularizers.l2(L2),
        )(x)
    else:
        x = layers.Conv2D(
            filters, 3, padding="same", name=f"conv2d{suffix}",
            kernel_regularizer=regularizers.l2(L2),
        )(x)
    x = layers.BatchNormalization(name=f"batch_normalization{suffix}")(x)
    x = layers.Activation("relu", name=f"re_lu{suffix}")(x)
    return layers.MaxPooling2D(2, name=f"max_pooling2d{suffix}")(x)


def _dense_block(x, units: int, index: int, dropout: float | None):
    """Dense -> BN -> ReLU (-> Dropout), the seed's classifier head block."""
    x = layers.Dense(units, name=f"dense_{index}", kernel_regularizer=regularizers.l2(L2))(x)
    x = layers.BatchNormalization(name=f"batch_normalization_{4 + index}")(x)
    x = layers.Activation("relu", name=f"re_lu_{4 + index}")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"dropout_{index + 1}")(x)
    return x


def build_idc_cnn(input_size: int = 128) -> keras.Model:
    """The seed's 27-layer IDC CNN: 171,329 parameters at 128x128x3 (any input size works).

    Conv32/64/128 and SeparableConv256 blocks, GAP, Dropout, Dense128-BN-ReLU-Dropout,
    Dense64-BN-ReLU, Dense1 (logit) and a sigmoid.
    """
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = inputs
    for index, filters in enumerate((32, 64, 128)):
        x = _conv_block(x, filters, index)
    x = _conv_block(x, 256, 3, separable=True)
    x = layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    x = layers.Dropout(0.5, name="dropout")(x)
    x = _dense_block(x, 128, 0, dropout=0.5)
    x = _dense_block(x, 64, 1, dropout=None)
    x = layers.Dense(1, name="logits", kernel_regularizer=regularizers.l2(L2))(x)
    outputs = layers.Activation("sigmoid", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="idc_cnn")


@dataclass(frozen=True)
class Builder:
    build: Callable[..., keras.Model]
    info: ModelInfo


MODELS: dict[str, Builder] = {
    "idc_cnn": Builder(build_idc_cnn, ModelInfo("idc", "sigmoid", "separable_conv2d")),
}


def create_model(name: str, **kwargs) -> keras.Model:
    """Build a registered model by name; the error lists the valid names."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    return MODELS[name].build(**kwargs)
