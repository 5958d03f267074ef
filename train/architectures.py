"""Model builders: an architecture in a page, registered by name in ``train/models.py``.

Every layer has a deterministic name, so a Grad-CAM target is just a string, and every model
ends in a linear layer named ``logits`` followed by its output activation named
``probabilities``: Grad-CAM differentiates the pre-activation class score (``logits``).
"""

from __future__ import annotations

import keras
from keras import layers, regularizers

L2 = 1e-4
# Keras' default BatchNormalization momentum (0.99) lets the moving statistics lag the weights
# for hundreds of steps; on datasets of a few thousand tiles (tens of steps per epoch) the
# inference-mode output then collapses to a constant (measured: val accuracy stuck at the
# majority rate for 8 epochs on 550 synthetic tiles, vs 0.69 with 0.9). Parameter count unchanged.
BN_MOMENTUM = 0.9


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
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"batch_normalization{suffix}")(x)
    x = layers.Activation("relu", name=f"re_lu{suffix}")(x)
    return layers.MaxPooling2D(2, name=f"max_pooling2d{suffix}")(x)


def _dense_block(x, units: int, index: int, dropout: float | None):
    """Dense -> BN -> ReLU (-> Dropout), the seed's classifier head block."""
    x = layers.Dense(units, name=f"dense_{index}", kernel_regularizer=regularizers.l2(L2))(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"batch_normalization_{4 + index}")(x)
    x = layers.Activation("relu", name=f"re_lu_{4 + index}")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"dropout_{index + 1}")(x)
    return x


def build_idc_cnn(input_size: int) -> keras.Model:
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


KERAS_CACHE_NOTOP = "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"


def _densenet_backbone(inputs, weights: str | None):
    """DenseNet121 without its top, on ``inputs``; its last activation is the layer ``relu``.

    ``weights``: None (from scratch), "imagenet" (the no-top file already in the local Keras
    cache; nothing is downloaded), a path to a weight file, or a ``.keras`` model with a
    DenseNet121 backbone (in-domain pretraining, ``train/starts.py``) whose layers are copied by name.
    """
    base = keras.applications.DenseNet121(include_top=False, weights=None, input_tensor=inputs)
    if weights is not None:
        path = resolve_weights(weights)
        if path.suffix == ".keras":  # a whole trained model (e.g. IDC pretraining): take its backbone layers
            _copy_backbone_weights(base, keras.models.load_model(path, compile=False))
        else:
            base.load_weights(str(path))
    for layer in base.layers:  # see BN_MOMENTUM
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    return base.output


def _copy_backbone_weights(base, source) -> None:
    """Copy every weighted layer of ``base`` from the same-named layer of ``source``; all must exist."""
    by_name = {layer.name: layer for layer in source.layers}
    weighted = [layer for layer in base.layers if layer.weights]
    missing = [layer.name for layer in weighted if layer.name not in by_name]
    if missing:
        raise ValueError(f"the weight model lacks {len(missing)} backbone layers (first: {missing[0]})")
    for layer in weighted:
        layer.set_weights(by_name[layer.name].get_weights())


def resolve_weights(weights: str):
    """The local file behind ``--weights``; raises FileNotFoundError with a clear message."""
    from pathlib import Path

    if weights == "imagenet":
        cached = Path(keras.config.keras_home() if hasattr(keras.config, "keras_home") else "~/.keras").expanduser()
        path = cached / "models" / KERAS_CACHE_NOTOP
        if not path.is_file():
            raise FileNotFoundError(
                f"--weights imagenet needs {path} (no downloads here); copy the DenseNet121 no-top "
                "weight file there or pass its path with --weights PATH")
        return path
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"weight file {path} does not exist")
    return path


def _seed_head(x, n_classes: int, prefix: str = ""):
    """The seed's head: GAP -> Dense(64, ReLU, L2) -> BN -> Dropout(0.4) -> Dense(n) -> softmax."""
    x = layers.GlobalAveragePooling2D(name=f"{prefix}gap")(x)
    x = layers.Dense(64, activation="relu", kernel_regularizer=regularizers.l2(1e-3), name=f"{prefix}dense")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{prefix}head_bn")(x)
    x = layers.Dropout(0.4, name=f"{prefix}dropout")(x)
    x = layers.Dense(n_classes, name=f"{prefix}logits")(x)
    return layers.Activation("softmax", name=f"{prefix}probabilities")(x)


def build_densenet_classifier(n_classes: int, input_size: int, weights: str | None = None) -> keras.Model:
    """One stage of the BreaKHis hierarchy: DenseNet121 backbone + the seed's head."""
    inputs = keras.Input((input_size, input_size, 3), name="image")
    outputs = _seed_head(_densenet_backbone(inputs, weights), n_classes)
    return keras.Model(inputs, outputs, name=f"densenet121_{n_classes}class")


def build_densenet_multitask(input_size: int, weights: str | None = None,
                             heads: dict[str, int] | None = None) -> keras.Model:
    """One shared DenseNet121 backbone with a seed head per stage (binary, benign, malignant)."""
    heads = heads or {"binary": 2, "benign_subtype": 4, "malignant_subtype": 4}
    inputs = keras.Input((input_size, input_size, 3), name="image")
    features = _densenet_backbone(inputs, weights)
    outputs = {f"{name}_probabilities": _seed_head(features, n, prefix=f"{name}_") for name, n in heads.items()}
    return keras.Model(inputs, outputs, name="densenet121_multitask")
