"""The input guard: a bundle declares what it expects; far-off inputs carry a warning, labels stay."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgehisto.bundle.input_guard import ExpectedInput
from edgehisto.datasets.tasks import BREAKHIS, IDC
from edgehisto.errors import UnsupportedManifest
from tests.test_exit_codes import run


@pytest.mark.parametrize(("task", "height", "width", "warned"), [
    (IDC, 50, 50, False),
    (IDC, 35, 50, False),  # an edge patch, padded to 50x50
    (IDC, 50, 12, True),  # an edge patch that is mostly padding
    (IDC, 460, 700, True),  # a BreaKHis field
    (IDC, 230, 350, True),
    (IDC, 128, 128, True),
    (BREAKHIS, 460, 700, False),
    (BREAKHIS, 456, 700, False),
    (BREAKHIS, 230, 350, False),  # the shared copy, downscaled by 2
    (BREAKHIS, 700, 460, False),  # a turned field
    (BREAKHIS, 50, 50, True),  # an IDC patch
    (BREAKHIS, 460, 460, True),  # the aspect ratio is off
    (BREAKHIS, 2300, 3500, True),  # a whole-slide region
    (BREAKHIS, 224, 224, False),  # a 200X field published squashed to 224x224 (the model squashes alike)
    (BREAKHIS, 225, 224, True),  # square-ish but not the published squash
])
def test_the_rule_warns_exactly_on_inputs_far_from_the_declared_kind(task, height, width, warned):
    warning = task.expected_input.check(height, width)
    assert (warning is not None) == warned
    if warned:
        assert f"input is {width}x{height}" in warning and task.expected_input.description in warning


@pytest.mark.parametrize("declared", [
    {"description": "x", "size": [50, 50], "min_scale": 2.0, "max_scale": 3.0, "max_aspect_change": 1.3},
    {"description": "x", "size": [0, 50], "min_scale": 0.5, "max_scale": 2.0, "max_aspect_change": 1.3},
    {"description": "x", "size": [50, 50], "min_scale": 0.5, "max_scale": 2.0},
    {"description": "x", "size": [1e400, 50], "min_scale": 0.5, "max_scale": 2.0, "max_aspect_change": 1.3},
    {"description": "x", "size": [50, 50], "min_scale": 0.5, "max_scale": 2.0, "max_aspect_change": 1.3,
     "squashed_sizes": [[224]]},
    "a 50x50 patch",
])
def test_a_malformed_declaration_is_refused_naming_the_field(declared):
    with pytest.raises(UnsupportedManifest, match="expected_input"):
        ExpectedInput.from_manifest({"expected_input": declared})


def test_classify_warns_on_a_field_sent_to_the_idc_model_and_still_labels_it(tmp_path):
    rng = np.random.default_rng(0)
    field = tmp_path / "field.png"
    patch = tmp_path / "patch.png"
    cv2.imwrite(str(field), rng.integers(0, 256, (460, 700, 3), dtype=np.uint8))
    cv2.imwrite(str(patch), rng.integers(0, 256, (50, 50, 3), dtype=np.uint8))
    done = run("console script", "classify", field, patch, "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    records = {r["path"]: r for r in json.loads(done.stdout)}
    assert "input is 700x460, far from what this model expects" in records[str(field)]["warning"]
    assert records[str(field)]["label"] in ("IDC-negative", "IDC-positive")
    assert "warning" not in records[str(patch)]
    table = run("console script", "classify", field, cwd=tmp_path)
    assert "far from what this model expects" in table.stdout


@pytest.mark.parametrize("model", ["idc", "breakhis"])
def test_a_blank_grey_capture_is_labelled_with_a_warning_that_it_is_blank(tmp_path, model):
    grey = tmp_path / "grey.png"
    size = (50, 50) if model == "idc" else (460, 700)
    cv2.imwrite(str(grey), np.full((*size, 3), 128, np.uint8))
    noisy = tmp_path / "noisy.png"
    cv2.imwrite(str(noisy), np.random.default_rng(0).integers(100, 110, (*size, 3), dtype=np.uint8))
    done = run("console script", "classify", grey, noisy, "--model", model, "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    records = {Path(r["path"]).name: r for r in json.loads(done.stdout)}
    assert "one flat colour" in records["grey.png"]["warning"] and records["grey.png"]["label"]
    assert "one flat colour" not in records["noisy.png"].get("warning", "")
