"""Fixed crops of a field: where K crops of the model's input sit, and cutting them out.

A model trained on random crops of fields kept at one scale sees only part of a field at a time, so
a field is scored on K fixed crops whose class probabilities are averaged. Training's evaluation and
the runtime must cut the same crops, so the geometry lives here, in plain integers (no TensorFlow).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def crop_origins(field_size: tuple[int, int], crop_size: tuple[int, int], count: int) -> list[tuple[int, int]]:
    """Top-left ``(x, y)`` of ``count`` crops spread evenly across a field's width, vertically centred.

    One crop is centred. With two or more, the first touches the left edge and the last the right
    edge, and the ones between sit at the floor of the even spacing, so the crops cover the whole
    width whenever the spacing is at most a crop's width.

    Args:
        field_size: (height, width) of the field.
        crop_size: (height, width) of a crop; at most the field's.
        count: the number of crops K, at least 1.

    Raises:
        ValueError: a crop larger than the field, or K < 1.
    """
    (field_h, field_w), (crop_h, crop_w) = field_size, crop_size
    if crop_h > field_h or crop_w > field_w:
        raise ValueError(f"a {crop_h}x{crop_w} crop does not fit in a {field_h}x{field_w} field (height x width)")
    if count < 1:
        raise ValueError(f"at least one crop per field, got {count}")
    y, room = (field_h - crop_h) // 2, field_w - crop_w
    if count == 1:
        return [(room // 2, y)]
    return [(i * room // (count - 1), y) for i in range(count)]


def cut_crops(fields: np.ndarray, origins: Sequence[tuple[int, int]], crop_size: tuple[int, int]) -> np.ndarray:
    """The crops of each field, (N, H, W, C) -> (N, K, crop height, crop width, C), as a new array."""
    crop_h, crop_w = crop_size
    return np.stack([fields[:, y:y + crop_h, x:x + crop_w] for x, y in origins], axis=1)
