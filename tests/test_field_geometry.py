"""Fields at a fixed scale: the true aspect of a squashed field, the common size, the fixed crops."""

from __future__ import annotations

import numpy as np
import pytest

from edgehisto.bundle.crops import crop_origins, cut_crops
from edgehisto.datasets.breakhis_fields import aspect_change, field_size, unsquashed_size


def test_a_squashed_224_field_unsquashes_to_224x147_and_others_keep_their_size():
    assert unsquashed_size(224, 224, squashed=True) == (224, 147)
    assert unsquashed_size(350, 230, squashed=False) == (350, 230)
    assert unsquashed_size(700, 460, squashed=False) == (700, 460)


def test_the_common_field_size_keeps_the_breakhis_aspect():
    assert field_size(147) == (147, 224)
    assert field_size(230) == (230, 350)
    assert aspect_change(224, 224, squashed=True) < 0.005
    assert aspect_change(700, 456, squashed=False) < 0.01  # the few 700x456 fields
    assert aspect_change(224, 224, squashed=False) > 0.3  # a square field is not a BreaKHis field


@pytest.mark.parametrize("count", [2, 3, 4, 7])
def test_crops_lie_inside_the_field_and_cover_its_width(count):
    field, crop = (147, 224), (128, 128)
    origins = crop_origins(field, crop, count)
    assert len(origins) == count
    covered = np.zeros(field[1], bool)
    for x, y in origins:
        assert 0 <= x <= field[1] - crop[1] and 0 <= y <= field[0] - crop[0]
        assert y == (field[0] - crop[0]) // 2  # vertically centred
        covered[x:x + crop[1]] = True
    assert covered.all()
    assert origins[0][0] == 0 and origins[-1][0] == field[1] - crop[1]
    steps = np.diff([x for x, _ in origins])
    assert steps.min() > 0 and steps.max() - steps.min() <= 1  # evenly spread, left to right


def test_one_crop_is_the_centred_one():
    assert crop_origins((147, 224), (128, 128), 1) == [(48, 9)]
    assert crop_origins((128, 128), (128, 128), 1) == [(0, 0)]


def test_a_crop_larger_than_the_field_or_no_crop_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        crop_origins((100, 224), (128, 128), 3)
    with pytest.raises(ValueError, match="at least one"):
        crop_origins((147, 224), (128, 128), 0)


def test_cut_crops_returns_each_fields_crops_at_their_origins():
    fields = np.arange(2 * 6 * 8 * 3, dtype=np.uint8).reshape(2, 6, 8, 3)
    origins = crop_origins((6, 8), (4, 4), 2)
    crops = cut_crops(fields, origins, (4, 4))
    assert crops.shape == (2, 2, 4, 4, 3)
    for k, (x, y) in enumerate(origins):
        np.testing.assert_array_equal(crops[:, k], fields[:, y:y + 4, x:x + 4])
    crops[:] = 0
    assert fields.any()  # a new array: the caller's fields are untouched
