"""Tile arrays and tf.data pipelines built on the runtime's own preprocessing functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from edgehisto.bundle.preprocess import PreprocessSpec, load_resized
from edgehisto.bundle.progress import Progress, no_progress
from edgehisto.errors import EdgehistoError
from edgehisto.train.augment import (
    breakhis_augmenter,
    hed_jitter,
    random_brightness,
    seed_augmenter,
    stain_jitter,
)


@dataclass
class TileArrays:
    """Resized uint8 tiles (N, H, W, 3) with labels; rows that failed to load are listed."""

    images: np.ndarray
    labels: np.ndarray
    relpaths: list[str]
    failures: list[tuple[str, str]]


def load_tiles(
    root: Path,
    relpaths: Sequence[str],
    labels: Sequence[int],
    spec: PreprocessSpec,
    progress: Progress = no_progress,
) -> TileArrays:
    """Decode, pad and resize tiles exactly as the runtime will (``load_resized``)."""
    images, kept, kept_labels, failures = [], [], [], []
    for index, (relpath, label) in enumerate(zip(relpaths, labels, strict=True)):
        try:
            images.append(load_resized(Path(root) / relpath, spec))
        except (EdgehistoError, OSError) as error:
            failures.append((relpath, str(error)))
        else:
            kept.append(relpath)
            kept_labels.append(int(label))
        if (index + 1) % 500 == 0 or index + 1 == len(relpaths):  # a loop ends at done == total
            progress(index + 1, len(relpaths), "tiles")
    shape = (0, *spec.input_size, 3)
    stacked = np.stack(images) if images else np.zeros(shape, np.uint8)
    return TileArrays(stacked, np.asarray(kept_labels, np.int64), kept, failures)


def normalize_tf(images: tf.Tensor, spec: PreprocessSpec) -> tf.Tensor:
    """TensorFlow twin of ``runtime.preprocess.normalize``: same float32 ops in the same order."""
    x = tf.cast(images, tf.float32) * tf.constant(spec.scale, tf.float32)
    if spec.mean != (0.0, 0.0, 0.0) or spec.std != (1.0, 1.0, 1.0):
        x = (x - tf.constant(spec.mean, tf.float32)) / tf.constant(spec.std, tf.float32)
    return x


def make_dataset(
    arrays: TileArrays,
    targets: np.ndarray,
    spec: PreprocessSpec,
    *,
    batch_size: int,
    augment: bool,
    seed: int,
    stain: bool = False,
    hed: bool = False,
    recipe: str = "idc",
    sample_weights=None,
    random_crop: tuple[int, int] | None = None,
    max_zoom: float = 1.0,
) -> tf.data.Dataset:
    """Batched, prefetched (image, target[, weight]) pipeline; augmentation only if asked.

    ``recipe`` picks the seed's augmentation ("idc": rotation/zoom/shift/flip/brightness;
    "breakhis": flip/small rotation/zoom/contrast); ``stain`` adds HSV colour jitter on top, ``hed``
    stain jitter in H&E space (both may be on).
    ``targets`` and ``sample_weights`` may be dicts keyed by output name (multitask models).
    ``random_crop`` (height, width): each image is cut to a random crop of that size, a fresh one
    every epoch, before any augmentation. ``max_zoom`` > 1 zooms each training image in by a random
    factor up to it, as the first step of the "breakhis" recipe (see ``breakhis_augmenter``).
    """
    if max_zoom > 1 and recipe != "breakhis":
        raise ValueError(f"a magnification zoom belongs to the breakhis recipe, not {recipe!r}")
    tensors = (arrays.images, targets) if sample_weights is None else (arrays.images, targets, sample_weights)
    dataset = tf.data.Dataset.from_tensor_slices(tensors)
    if augment:
        dataset = dataset.shuffle(len(arrays.labels), seed=seed, reshuffle_each_iteration=True)
    if random_crop is not None:
        size = (*random_crop, arrays.images.shape[-1])
        # A seeded random op inside map repeats its draws every epoch; a seed stream drawn afresh each
        # epoch, fed to a stateless crop, gives new crops every epoch and the same run for the same seed.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip(dataset, seeds).map(
            lambda element, pair: (tf.image.stateless_random_crop(element[0], size, seed=pair), *element[1:]),
            num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size)
    if augment:
        augmenter = seed_augmenter(seed) if recipe == "idc" else breakhis_augmenter(seed, max_zoom)

        def _augment(images, *rest):
            images = tf.cast(images, tf.float32)
            images = augmenter(images, training=True)
            if recipe == "idc":
                images = random_brightness(images, seed)
            images = tf.clip_by_value(images, 0.0, 255.0)
            if stain:
                images = stain_jitter(images, seed)
            if hed:
                images = hed_jitter(images, seed)
            return (normalize_tf(images, spec), *rest)

        dataset = dataset.map(_augment, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        dataset = dataset.map(lambda images, *rest: (normalize_tf(images, spec), *rest))
    return dataset.prefetch(tf.data.AUTOTUNE)
