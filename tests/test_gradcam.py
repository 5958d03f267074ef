"""``edgehisto.runtime.gradcam``: the Grad-CAM formula, class-score seeds and the overlay helper."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgehisto.runtime.gradcam import gradcam, normalize_map, overlay, score_seed


def _nhwc(*channels: list[list[float]]) -> np.ndarray:
    """One (1, h, w, c) float32 tensor from c hand-written (h, w) channel maps."""
    return np.stack([np.asarray(c, np.float32) for c in channels], axis=-1)[None]


def test_gradcam_weights_channels_by_their_mean_gradient_and_sums_them():
    activations = _nhwc([[1, 2], [3, 4]], [[0, 1], [1, 0]])
    gradients = _nhwc([[1, 1], [1, 1]], [[-4, 0], [0, 0]])  # channel weights 1 and -1
    # 1 * [[1, 2], [3, 4]] - 1 * [[0, 1], [1, 0]]
    np.testing.assert_array_equal(gradcam(activations, gradients), [[[1, 1], [2, 4]]])


def test_gradcam_map_is_relud_float32_of_shape_n_h_w():
    activations = _nhwc([[1, 2], [3, 4]], [[2, 1], [1, 0]])
    gradients = _nhwc([[1, 1], [1, 1]], [[-1, -1], [-1, -1]])
    cam = gradcam(activations, gradients)
    # before the ReLU: [[1 - 2, 2 - 1], [3 - 1, 4 - 0]] = [[-1, 1], [2, 4]]
    np.testing.assert_array_equal(cam, [[[0, 1], [2, 4]]])
    assert cam.dtype == np.float32 and cam.shape == (1, 2, 2)


def test_gradcam_treats_each_batch_row_on_its_own():
    first = (_nhwc([[1, 0], [0, 0]]), _nhwc([[2, 2], [2, 2]]))
    second = (_nhwc([[0, 0], [0, 3]]), _nhwc([[0, 0], [0, -4]]))  # weight -1: all clipped
    both = gradcam(np.concatenate([first[0], second[0]]), np.concatenate([first[1], second[1]]))
    np.testing.assert_array_equal(both, [[[2, 0], [0, 0]], [[0, 0], [0, 0]]])


def test_a_sigmoid_model_always_maps_the_positive_class_evidence():
    # The negative-class map (seed -1) was a padding artefact on the embedded IDC model.
    seed = score_seed("sigmoid", 1, np.array([1, 0, 1]))
    np.testing.assert_array_equal(seed, [[1.0], [1.0], [1.0]])
    assert seed.dtype == np.float32


def test_a_fixed_display_peak_draws_weak_maps_faintly_and_clips_strong_ones():
    cam = np.array([[0.0, 0.5], [1.0, 4.0]], np.float32)
    np.testing.assert_array_equal(normalize_map(cam, peak=2.0), [[0.0, 0.25], [0.5, 1.0]])
    np.testing.assert_array_equal(normalize_map(cam), cam / 4.0)
    tile = np.full((8, 8, 3), 128, np.uint8)
    blank = overlay(tile, np.zeros_like(cam)).astype(int)
    faint = overlay(tile, cam * 0.01, peak=2.0).astype(int)
    stretched = overlay(tile, cam * 0.01).astype(int)  # scaled by its own peak: full colour
    assert np.abs(faint - blank).max() <= 10 < np.abs(stretched - blank).max()
    assert cam.max() == 4.0  # the caller's map is untouched


def test_softmax_score_seed_is_one_hot_on_the_class():
    seed = score_seed("softmax", 4, np.array([2, 0, 3]))
    np.testing.assert_array_equal(seed, [[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
    assert seed.dtype == np.float32


@pytest.fixture
def tile() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)


def test_overlay_returns_uint8_rgb_the_size_of_the_tile(tile):
    cam = np.random.default_rng(1).random((3, 3)).astype(np.float32)
    blended = overlay(tile, cam)
    assert blended.dtype == np.uint8 and blended.shape == tile.shape


def test_overlay_does_not_modify_its_inputs(tile):
    cam = np.random.default_rng(1).random((3, 3)).astype(np.float32) * 5
    tile_before, cam_before = tile.copy(), cam.copy()
    overlay(tile, cam, alpha=0.7)
    np.testing.assert_array_equal(tile, tile_before)
    np.testing.assert_array_equal(cam, cam_before)


def test_overlay_with_alpha_zero_is_the_tile_and_with_alpha_one_is_the_heat_map(tile):
    cam = np.zeros((3, 3), np.float32)
    cam[0, 0] = 1.0
    np.testing.assert_array_equal(overlay(tile, cam, alpha=0.0), tile)
    hot = overlay(tile, cam, alpha=1.0)
    red, blue = hot[0, 0].astype(int)[0], hot[0, 0].astype(int)[2]
    assert red > blue  # JET's top end is red, in RGB order


@pytest.mark.parametrize("image", [
    np.zeros((12, 10, 3), np.float32),
    np.zeros((12, 10, 3), np.uint16),
    np.zeros((12, 10), np.uint8),
    np.zeros((12, 10, 4), np.uint8),
])
def test_overlay_rejects_anything_but_an_8_bit_rgb_image(image):
    with pytest.raises(ValueError, match="8-bit RGB"):
        overlay(image, np.ones((3, 3), np.float32))


@pytest.mark.parametrize("alpha", [-0.1, 1.1, float("nan")])
def test_overlay_rejects_alpha_outside_zero_to_one(tile, alpha):
    with pytest.raises(ValueError, match="alpha"):
        overlay(tile, np.ones((3, 3), np.float32), alpha=alpha)


def test_an_all_zero_map_blends_the_zero_colour_of_the_heat_map_without_nans(tile):
    cam = np.zeros((3, 3), np.float32)
    assert np.array_equal(normalize_map(cam), cam) and np.isfinite(normalize_map(cam)).all()
    zero_heat = cv2.cvtColor(
        cv2.applyColorMap(np.zeros(tile.shape[:2], np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB
    )
    expected = cv2.addWeighted(zero_heat, 0.4, tile, 0.6, 0.0)
    np.testing.assert_array_equal(overlay(tile, cam, alpha=0.4), expected)
