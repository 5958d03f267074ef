"""The seed's training augmentation, as a tf.data map function (train split only)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

# Ruifrok & Johnston's optical-density vectors of haematoxylin, eosin and DAB (rows), each of unit length.
_STAINS = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
OD_FROM_HED = _STAINS / np.linalg.norm(_STAINS, axis=1, keepdims=True)
HED_FROM_OD = np.linalg.inv(OD_FROM_HED)


def seed_augmenter(seed: int) -> keras.Sequential:
    """Rotation ±20°, zoom 20%, shifts 10%, horizontal flip (the seed's ImageDataGenerator).

    ``fill_mode="nearest"`` matches ImageDataGenerator's default, which the seed used.
    """
    return keras.Sequential(
        [
            keras.layers.RandomRotation(20 / 360, fill_mode="nearest", seed=seed),
            keras.layers.RandomZoom(0.2, fill_mode="nearest", seed=seed + 1),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed + 2),
            keras.layers.RandomFlip("horizontal", seed=seed + 3),
        ],
        name="augmentation",
    )


def breakhis_augmenter(seed: int, max_zoom: float = 1.0) -> keras.Sequential:
    """The BreaKHis seed's augmentation: horizontal flips, small rotations and zooms, minor contrast.

    ``max_zoom`` > 1 puts ``magnification_zoom`` in front of it (magnification as augmentation).
    """
    zoom = [magnification_zoom(seed, max_zoom)] if max_zoom > 1 else []
    return keras.Sequential(
        [
            *zoom,
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(10 / 360, fill_mode="reflect", seed=seed + 1),
            keras.layers.RandomZoom(0.1, fill_mode="reflect", seed=seed + 2),
            keras.layers.RandomContrast(0.1, seed=seed + 3),
        ],
        name="augmentation",
    )


def magnification_zoom(seed: int, max_zoom: float) -> keras.layers.RandomZoom:
    """A random zoom-in of up to ``max_zoom`` (the aspect kept): a 100X field seen as up to 200X at 2.

    BreaKHis fields come at 40X to 400X and ``real/`` is 100X while ``more/`` is mostly 200X, so at
    one input size the same tissue appears at two scales. Zooming in only samples a smaller region
    of the field, so no border is invented.
    """
    return keras.layers.RandomZoom((1 / max_zoom - 1, 0.0), fill_mode="reflect", seed=seed + 4)


def random_brightness(images: tf.Tensor, seed: int, low: float = 0.8, high: float = 1.2) -> tf.Tensor:
    """Multiply each image by a factor in [low, high] and clip to the uint8 range.

    The seed's ``brightness_range`` is multiplicative; keras' RandomBrightness is additive.
    """
    batch = tf.shape(images)[0]
    factors = tf.random.uniform([batch, 1, 1, 1], low, high, seed=seed)
    return tf.clip_by_value(images * factors, 0.0, 255.0)


def stain_jitter(images: tf.Tensor, seed: int, hue: float = 0.06, saturation: float = 0.35,
                 gain: float = 0.12) -> tf.Tensor:
    """Per-image colour jitter in HSV plus per-channel gains, on 0..255 float RGB batches.

    Not part of the seed's recipe: patients differ mostly in H&E staining, so colour jitter is
    what lets a model trained on a few patients hold up on unseen ones (``--stain-augment``).
    """
    batch = tf.shape(images)[0]
    hsv = tf.image.rgb_to_hsv(images / 255.0)
    h_shift = tf.random.uniform([batch, 1, 1], -hue, hue, seed=seed + 10)
    s_scale = tf.random.uniform([batch, 1, 1], 1 - saturation, 1 + saturation, seed=seed + 11)
    h = tf.math.floormod(hsv[..., 0] + h_shift, 1.0)
    s = tf.clip_by_value(hsv[..., 1] * s_scale, 0.0, 1.0)
    rgb = tf.image.hsv_to_rgb(tf.stack([h, s, hsv[..., 2]], axis=-1)) * 255.0
    gains = tf.random.uniform([batch, 1, 1, 3], 1 - gain, 1 + gain, seed=seed + 12)
    return tf.clip_by_value(rgb * gains, 0.0, 255.0)


def rgb_to_hed(images: tf.Tensor) -> tf.Tensor:
    """0..255 float RGB to stain concentrations: optical density ``-ln((x + 1) / 256)`` unmixed into H, E, D."""
    od = -tf.math.log((images + 1.0) / 256.0)
    return tf.linalg.matvec(tf.constant(HED_FROM_OD.T, tf.float32), od)


def hed_to_rgb(stains: tf.Tensor) -> tf.Tensor:
    """The inverse of ``rgb_to_hed``, clipped to 0..255."""
    od = tf.linalg.matvec(tf.constant(OD_FROM_HED.T, tf.float32), stains)
    return tf.clip_by_value(256.0 * tf.exp(-od) - 1.0, 0.0, 255.0)


def hed_jitter(images: tf.Tensor, seed: int, scale: float = 0.2, shift: float = 0.1) -> tf.Tensor:
    """Per-image stain jitter in H&E space, on 0..255 float RGB batches (``--hed-augment``).

    Each image's haematoxylin, eosin and DAB amounts are each multiplied by a factor in
    [1 - scale, 1 + scale] and moved by [-shift, shift] optical density: another lab's staining of
    the same tissue. Unstained (white) glass stays white when ``shift`` is 0.
    """
    batch = tf.shape(images)[0]
    factors = tf.random.uniform([batch, 1, 1, 3], 1 - scale, 1 + scale, seed=seed + 20)
    shifts = tf.random.uniform([batch, 1, 1, 3], -shift, shift, seed=seed + 21)
    return hed_to_rgb(rgb_to_hed(images) * factors + shifts)
