"""The declared colour normalisation: exact integers that agree with the float formula, and a spec
field that old manifests (without it) still read as 'no colour step'."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edgehisto.bundle.colour import normalise_colour
from edgehisto.bundle.preprocess import PreprocessSpec, resize_tile

TARGET_MEAN, TARGET_STD = (204, 159, 185), (24, 37, 27)


def _float_reference(rgb: np.ndarray) -> np.ndarray:
    x = rgb.reshape(-1, 3).astype(np.float64)
    out = np.asarray(TARGET_MEAN) + (x - x.mean(0)) * np.asarray(TARGET_STD) / np.where(x.std(0) > 0, x.std(0), 1)
    out[:, x.std(0) == 0] = np.asarray(TARGET_MEAN)[x.std(0) == 0]
    return np.clip(np.round(out), 0, 255).reshape(rgb.shape)


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40), st.just(3))))
def test_the_integer_transfer_is_the_float_formula_to_within_one_level(rgb):
    exact = normalise_colour(rgb, "channel_stats_exact", TARGET_MEAN, TARGET_STD).astype(int)
    assert np.abs(exact - _float_reference(rgb)).max() <= 1


def test_a_tinted_tile_comes_out_at_the_target_mean_and_std():
    rng = np.random.default_rng(0)
    tile = np.clip(rng.normal((150, 120, 200), (15, 30, 10), (128, 128, 3)), 0, 255).astype(np.uint8)
    out = normalise_colour(tile, "channel_stats_exact", TARGET_MEAN, TARGET_STD).reshape(-1, 3).astype(float)
    assert np.allclose(out.mean(0), TARGET_MEAN, atol=1.0)
    assert np.allclose(out.std(0), TARGET_STD, atol=1.0)


def test_a_flat_tile_only_moves_to_the_target_mean_and_an_unknown_method_is_refused():
    flat = np.full((8, 8, 3), 77, np.uint8)
    assert (normalise_colour(flat, "channel_stats_exact", TARGET_MEAN, TARGET_STD) == TARGET_MEAN).all()
    with pytest.raises(ValueError, match="unknown colour normalisation"):
        normalise_colour(flat, "macenko", TARGET_MEAN, TARGET_STD)


def test_the_spec_runs_the_step_after_the_resize_and_a_manifest_without_it_has_none():
    colour = {"method": "channel_stats_exact", "mean": list(TARGET_MEAN), "std": list(TARGET_STD)}
    spec = PreprocessSpec(input_size=(16, 16), resize_method="area_exact", colour=colour)
    rng = np.random.default_rng(1)
    field = rng.integers(100, 200, (46, 70, 3), dtype=np.uint8)
    plain = resize_tile(field, PreprocessSpec(input_size=(16, 16), resize_method="area_exact"))
    assert (resize_tile(field, spec) == normalise_colour(plain, "channel_stats_exact", TARGET_MEAN,
                                                         TARGET_STD)).all()
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec
    old = {k: v for k, v in spec.to_dict().items() if k != "colour"}
    assert PreprocessSpec.from_dict(old).colour is None
