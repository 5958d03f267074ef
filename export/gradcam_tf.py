"""The reference Grad-CAM, computed with TensorFlow's GradientTape from the Keras model."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from edgehisto.bundle.outputs import class_probabilities


def tf_gradcam(model: keras.Model, layer: str, output: str, x: np.ndarray,
               class_indices: np.ndarray, batch_size: int = 32, logits: str = "logits") -> np.ndarray:
    """Grad-CAM maps (N, h, w) of the pre-activation score of ``class_indices`` at ``layer``.

    The score is the logit of the class (softmax models) or, for single-sigmoid models, the
    logit itself whatever the class: the positive-class map (see ``runtime/gradcam.py``).
    """
    probe = keras.Model(model.input, [model.get_layer(layer).output, model.get_layer(logits).output])
    maps = []
    for start in range(0, len(x), batch_size):
        batch = tf.constant(x[start:start + batch_size])
        classes = tf.constant(np.asarray(class_indices[start:start + batch_size]), tf.int32)
        with tf.GradientTape() as tape:
            activations, logits = probe(batch, training=False)
            score = logits[:, 0] if output == "sigmoid" else tf.gather(logits, classes, batch_dims=1)
        # Rows are independent at inference (BatchNorm uses moving statistics), so the
        # gradient of the summed scores gives each row's own gradient.
        grads = tape.gradient(score, activations)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        maps.append(tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1)).numpy())
    return np.concatenate(maps).astype(np.float32)


def keras_probabilities(model: keras.Model, x: np.ndarray, output: str, batch_size: int = 64) -> np.ndarray:
    """(N, K) float64 class probabilities from the Keras model of a stage with ``output`` kind.

    The model is called batch by batch, eagerly: ``predict`` first traces a graph, about 4 s for each
    DenseNet121 stage model on 2 cores, more than the forward passes of a parity or golden set cost.
    """
    raw = np.concatenate([keras.ops.convert_to_numpy(model(x[start:start + batch_size], training=False))
                          for start in range(0, max(len(x), 1), batch_size)])
    return class_probabilities(np.asarray(raw, np.float64), output)
