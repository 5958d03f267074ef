"""The runtime builds exactly the tensors training fed the model (decode, RGB, pad, resize, scale)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_IDC, needs_shared_idc

pytest.importorskip("tensorflow")


def _training_tensors(root, relpaths, spec):
    """What training's validation pipeline (no augmentation) yields for these tiles."""
    from edgehisto.train.data import load_tiles, make_dataset

    arrays = load_tiles(root, relpaths, np.zeros(len(relpaths), int), spec)
    dataset = make_dataset(arrays, arrays.labels, spec, batch_size=16, augment=False, seed=0)
    return np.concatenate([x.numpy() for x, _ in dataset])


def _runtime_tensors(root, relpaths, spec):
    from edgehisto.bundle.preprocess import load_resized, normalize

    return np.stack([normalize(load_resized(root / p, spec), spec) for p in relpaths])


def _assert_identical(root, relpaths, input_size):
    from edgehisto.train.idc import idc_preprocess_spec

    spec = idc_preprocess_spec(input_size)
    train, runtime = _training_tensors(root, relpaths, spec), _runtime_tensors(root, relpaths, spec)
    assert train.shape == runtime.shape == (len(relpaths), input_size, input_size, 3)
    np.testing.assert_array_equal(train, runtime)


@pytest.mark.parametrize("input_size", [128, 50])
def test_runtime_preprocessing_equals_training_on_synthetic_tiles(synth_idc_dir, input_size):
    from edgehisto.datasets.idc import scan_idc

    dataset = scan_idc(synth_idc_dir)
    undersized = [t.relpath for t in dataset.undersized]
    relpaths = dataset.relpaths[:30] + undersized
    assert undersized, "the synthetic set should include edge patches"
    _assert_identical(dataset.root, relpaths, input_size)


@needs_shared_idc
def test_runtime_preprocessing_equals_training_on_real_tiles():
    from edgehisto.datasets.idc import scan_idc

    dataset = scan_idc(SHARED_IDC)
    # Slivers under the minimum side (e.g. 50x1) are refused by training and the runtime alike.
    edge = [t.relpath for t in dataset.undersized if min(t.width, t.height) >= 8]
    slivers = [t.relpath for t in dataset.undersized if min(t.width, t.height) < 8]
    relpaths = dataset.relpaths[::200] + edge
    for input_size in (128, 50):
        _assert_identical(dataset.root, relpaths, input_size)
    if slivers:
        from edgehisto.bundle.preprocess import load_resized
        from edgehisto.errors import InvalidImage
        from edgehisto.train.data import load_tiles
        from edgehisto.train.idc import idc_preprocess_spec

        spec = idc_preprocess_spec(50)
        assert len(load_tiles(dataset.root, slivers, np.zeros(len(slivers), int), spec).failures) == len(slivers)
        with pytest.raises(InvalidImage, match="minimum side"):
            load_resized(dataset.root / slivers[0], spec)


def test_undersized_edge_patches_are_padded_with_white_not_stretched():
    from edgehisto.bundle.preprocess import PreprocessSpec, resize_tile

    tile = np.zeros((35, 50, 3), np.uint8)  # a real edge patch is 50 wide, 35 tall
    spec = PreprocessSpec(input_size=(50, 50), pad_to=(50, 50))
    padded = resize_tile(tile, spec)
    assert padded.shape == (50, 50, 3)
    assert (padded[:35] == 0).all() and (padded[35:] == 255).all()
