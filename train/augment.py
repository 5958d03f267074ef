"""The seed's training augmentation, as a tf.data map function (train split only)."""

from __future__ import annotations

import keras
import tensorflow as tf


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


def random_brightness(images: tf.Tensor, seed: int, low: float = 0.8, high: float = 1.2) -> tf.Tensor:
    """Multiply each image by a factor in [low, high] and clip to the uint8 range.

    The seed's ``brightness_range`` is multiplicative; keras' RandomBrightness is additive.
    """
    batch = tf.shape(images)[0]
    factors = tf.random.uniform([batch, 1, 1, 1], low, high, seed=seed)
    return tf.clip_by_value(images * factors, 0.0, 255.0)
