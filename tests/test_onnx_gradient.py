"""``export/onnx_grad.py``: the ONNX gradient graph equals TensorFlow's GradientTape, exactly."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")

import keras  # noqa: E402
import onnxruntime as ort  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

from edgehisto.errors import ExportError  # noqa: E402
from edgehisto.export.convert import to_onnx  # noqa: E402
from edgehisto.export.onnx_grad import build_gradient_model  # noqa: E402

ACTIVATIONS_SHAPE = (8, 8, 16)
# float32 reassociation (MatMul, ReduceMean) differs between TF and onnxruntime by a few ulps;
# a wrong rule or a wrongly routed max-pool gradient is off by O(max |grad|).
RELATIVE_ATOL = 1e-5


def _randomise_batch_norm(model: keras.Model, rng: np.random.Generator) -> None:
    """Give every BatchNormalization non-trivial gamma, beta and moving statistics."""
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([
                rng.uniform(0.5, 2.0, n) * rng.choice([-1.0, 1.0], n),  # gamma, some negative
                rng.normal(0.0, 0.5, n),  # beta
                rng.normal(0.0, 1.0, n),  # moving mean
                rng.uniform(0.2, 3.0, n),  # moving variance
            ])


def _head(n_logits: int, seed: int) -> keras.Model:
    """A small Grad-CAM head: BN-ReLU-MaxPool-GAP on the activations, then a BN'd dense block."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(ACTIVATIONS_SHAPE, name="activations")
    x = layers.BatchNormalization(name="bn_target")(inputs)
    x = layers.ReLU(name="relu_target")(x)
    x = layers.MaxPooling2D(2, name="max_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(12, name="dense")(x)
    x = layers.BatchNormalization(name="bn_dense")(x)
    x = layers.ReLU(name="relu_dense")(x)
    logits = layers.Dense(n_logits, name="logits")(x)
    output = "sigmoid" if n_logits == 1 else "softmax"
    probabilities = layers.Activation(output, name="probabilities")(logits)
    model = keras.Model(inputs, [logits, probabilities], name=f"head_{n_logits}")
    _randomise_batch_norm(model, np.random.default_rng(seed))
    return model


def _onnx_gradient(model: keras.Model, activations: np.ndarray, seed: np.ndarray) -> np.ndarray:
    head = to_onnx(model, "activations", ["logits", "probabilities"])
    gradient_model = build_gradient_model(head)
    session = ort.InferenceSession(gradient_model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["gradient"], {"activations": activations, "seed": seed})[0]


def _tape_gradient(model: keras.Model, activations: np.ndarray, seed: np.ndarray) -> np.ndarray:
    x = tf.constant(activations)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits, _ = model(x, training=False)
        score = tf.reduce_sum(logits * seed)
    return tape.gradient(score, x).numpy()


def _assert_gradients_match(model, activations, seed):
    expected = _tape_gradient(model, activations, seed)
    actual = _onnx_gradient(model, activations, seed)
    assert actual.shape == expected.shape == activations.shape
    assert actual.dtype == np.float32
    scale = float(np.abs(expected).max())
    assert scale > 0, "a degenerate head: the gradient is zero everywhere"
    np.testing.assert_allclose(actual, expected, rtol=0, atol=RELATIVE_ATOL * scale)


@pytest.mark.parametrize("n_logits", [1, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_onnx_gradient_equals_gradient_tape_for_random_heads_and_seeds(n_logits, seed):
    rng = np.random.default_rng(100 + seed)
    activations = rng.normal(0.0, 1.5, (5, *ACTIVATIONS_SHAPE)).astype(np.float32)
    score_seed = rng.normal(0.0, 1.0, (5, n_logits)).astype(np.float32)
    _assert_gradients_match(_head(n_logits, seed), activations, score_seed)


def _tied_windows(rng: np.random.Generator, n: int) -> np.ndarray:
    """Activations whose 2x2 pooling windows hold two values, each at two positions.

    Whatever the sign of BN's gamma, each window's maximum after BN-ReLU is then an exact tie,
    so the gradient's route depends on which tied position is taken as the argmax.
    """
    h, w, c = ACTIVATIONS_SHAPE
    pairs = rng.normal(0.0, 1.5, (n, h // 2, w // 2, c, 2)).astype(np.float32)
    windows = np.empty((n, h // 2, w // 2, c, 4), np.float32)
    for pattern in range(n * (h // 2) * (w // 2) * c):
        order = rng.permutation([0, 0, 1, 1])
        windows.reshape(-1, 4)[pattern] = pairs.reshape(-1, 2)[pattern][order]
    # (n, h/2, w/2, c, 2, 2) -> (n, h/2, 2, w/2, 2, c) -> (n, h, w, c)
    blocks = windows.reshape(n, h // 2, w // 2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3)
    return np.ascontiguousarray(blocks.reshape(n, h, w, c))


@pytest.mark.parametrize("n_logits", [1, 4])
def test_max_pool_ties_route_the_gradient_to_the_same_position_as_tensorflow(n_logits):
    rng = np.random.default_rng(7)
    model = _head(n_logits, seed=3)
    activations = _tied_windows(rng, 4)
    pooled_input = keras.Model(model.input, model.get_layer("relu_target").output)(activations).numpy()
    windows = pooled_input.reshape(4, 4, 2, 4, 2, 16).transpose(0, 1, 3, 5, 2, 4).reshape(-1, 4)
    peaks = windows.max(axis=1)
    tied = (windows == peaks[:, None]).sum(axis=1) >= 2
    assert np.sum(tied & (peaks > 0)) > 100, "the fixture should hold many positive exact ties"
    score_seed = rng.normal(0.0, 1.0, (4, n_logits)).astype(np.float32)
    _assert_gradients_match(model, activations, score_seed)


def test_a_head_with_an_op_without_a_gradient_rule_raises_export_error_naming_it():
    keras.utils.set_random_seed(0)
    inputs = keras.Input(ACTIVATIONS_SHAPE, name="activations")
    x = layers.Activation("tanh", name="tanh_after_target")(inputs)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    logits = layers.Dense(2, name="logits")(x)
    probabilities = layers.Activation("softmax", name="probabilities")(logits)
    head = to_onnx(keras.Model(inputs, [logits, probabilities]), "activations", ["logits", "probabilities"])
    assert "Tanh" in {node.op_type for node in head.graph.node}
    with pytest.raises(ExportError, match="'Tanh'"):
        build_gradient_model(head)


def test_a_finer_densenet_layer_gets_an_exact_gradient_through_dense_block_5():
    """Target ``pool4_conv`` (8x8 at 128 input, 4x4 here): the head has Conv, Concat, AveragePool."""
    from edgehisto.export.convert import split_at
    from edgehisto.train.models import create_model

    keras.utils.set_random_seed(0)
    model = create_model("densenet121", n_classes=4, input_size=64)
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.2, layer.moving_mean.shape).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape).astype(np.float32))
    parts = split_at(model, "pool4_conv")
    head = to_onnx(parts.head, "activations", ["logits", "probabilities"])
    assert {"Conv", "Concat", "AveragePool"} <= {node.op_type for node in head.graph.node}
    activations = rng.normal(0, 1, (2, *parts.activations_shape)).astype(np.float32)
    seed = np.eye(4, dtype=np.float32)[[1, 3]]
    session = ort.InferenceSession(build_gradient_model(head).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    ours = session.run(None, {"activations": activations, "seed": seed})[0]
    tensor = tf.constant(activations)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        score = tf.reduce_sum(parts.head(tensor, training=False)[0] * seed)
    theirs = tape.gradient(score, tensor).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5 * np.abs(theirs).max())
