"""Every reader turns a stage's probabilities output into per-class columns the same way."""

from __future__ import annotations

import numpy as np

from edgehisto.bundle.outputs import OUTPUTS, class_probabilities


def test_a_single_sigmoid_column_becomes_negative_and_positive_columns():
    raw = np.array([[0.25], [0.9]], np.float32)
    probabilities = class_probabilities(raw, "sigmoid")
    np.testing.assert_allclose(probabilities, [[0.75, 0.25], [0.1, 0.9]], atol=1e-7)
    assert probabilities.dtype == np.float32  # onnxruntime's float32 outputs stay float32


def test_softmax_rows_pass_through_unchanged():
    raw = np.array([[0.1, 0.2, 0.7]], np.float64)
    assert np.array_equal(class_probabilities(raw, "softmax"), raw)


def test_output_kinds_are_the_two_the_manifest_documents():
    assert OUTPUTS == ("sigmoid", "softmax")
