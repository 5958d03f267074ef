"""Microbenchmarks of the runtime hot path (pytest-benchmark; run by `make bench`, not `make test`).

Uses the bundle in $EDGEHISTO_BENCH_BUNDLE, else the embedded default model.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from edgehisto.bundle.preprocess import load_resized, normalize
from edgehisto.errors import BundleNotFound
from edgehisto.runtime.classifier import Classifier
from edgehisto.runtime.registry import resolve_bundle


@pytest.fixture(scope="module")
def bundle():
    try:
        return resolve_bundle(os.environ.get("EDGEHISTO_BENCH_BUNDLE"))
    except BundleNotFound as missing:
        pytest.skip(str(missing))


@pytest.fixture(scope="module", params=[(50, 50), (460, 700)], ids=["idc-50x50", "breakhis-700x460"])
def tile_file(request, tmp_path_factory):
    height, width = request.param
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("tiles") / f"tile_{width}x{height}.png"
    cv2.imwrite(str(path), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return path


def test_preprocess_one_tile(benchmark, bundle, tile_file):
    spec = bundle.preprocess
    x = benchmark(lambda: normalize(load_resized(tile_file, spec), spec))
    assert x.shape == (*spec.input_size, 3)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_session_run_batch_of_one(benchmark, bundle, precision):
    clf = Classifier(bundle, precision=precision, allow_failed_parity=True)
    stage = clf.stages[bundle.entry_stage]
    x = np.random.default_rng(0).random((1, *bundle.preprocess.input_size, 3), dtype=np.float32)
    probs = benchmark(lambda: clf.head(clf.activations(x, stage), stage)[1])
    assert probs.shape == (1, len(stage.class_names))


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_gradcam_batch_of_one(benchmark, bundle, precision):
    clf = Classifier(bundle, precision=precision, allow_failed_parity=True)
    x = np.random.default_rng(0).random((1, *bundle.preprocess.input_size, 3), dtype=np.float32)
    maps = benchmark(lambda: clf.gradcam(x))
    assert maps.ndim == 3 and maps.shape[0] == 1
