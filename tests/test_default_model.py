"""The embedded default IDC model: integrity, size, out-of-the-box classify, and an honest card."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SHARED_IDC, needs_shared_idc

from edgehisto.bundle.manifest import load_bundle
from edgehisto.cli import cli
from edgehisto.runtime.registry import DEFAULT_MODEL, embedded_bundles

BUNDLE = embedded_bundles().get(DEFAULT_MODEL)
pytestmark = pytest.mark.skipif(BUNDLE is None, reason="no embedded default model in this checkout")


def test_embedded_default_model_is_intact_small_and_parity_checked():
    bundle = load_bundle(BUNDLE)  # verifies every sha256
    total = sum(p.stat().st_size for p in BUNDLE.rglob("*") if p.is_file())
    assert total <= 5 * 1024 * 1024
    assert bundle.manifest["parity"]["passed"] is True
    assert {"MODEL_CARD.md", "model_card.json"} <= set(bundle.manifest["files"])


def test_classify_without_model_uses_the_embedded_default(good_tile):
    result = CliRunner().invoke(cli, ["classify", str(good_tile), "--format", "json"])
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    assert record["label"] in ("IDC-negative", "IDC-positive")


def test_models_command_lists_the_default():
    result = CliRunner().invoke(cli, ["models", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows if r["default"]] == [DEFAULT_MODEL]


@needs_shared_idc
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_model_card_metrics_match_what_the_runtime_measures_on_the_test_patients(precision):
    from edgehisto.metrics.scores import binary_metrics
    from edgehisto.runtime.classifier import Classifier

    card = json.loads((BUNDLE / "model_card.json").read_text())
    with open(BUNDLE / "reference" / "test_split.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    results = Classifier(BUNDLE, precision=precision).classify_paths([SHARED_IDC / r["relpath"] for r in rows])
    # The held-out listing leaves out the slide-edge slivers training could not load (the card counts
    # them); every listed tile is classified.
    assert all(r.ok for r in results)
    probs = np.array([r.stages[0].probabilities["IDC-positive"] for r in results])
    measured = binary_metrics(np.array([int(r["label"]) for r in rows]), probs)
    claimed = card["metrics"]["test"][precision]
    assert measured["confusion_matrix"] == claimed["confusion_matrix"]
    for key in ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1"):
        assert measured[key] == pytest.approx(claimed[key], abs=1e-12)
    text = (BUNDLE / "MODEL_CARD.md").read_text()
    assert f"{claimed['balanced_accuracy']:.3f}" in text and "not a diagnostic device" in text
