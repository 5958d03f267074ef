"""``edgehisto verify``: the golden set replayed on this machine, and bundles that must not be used."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_exit_codes import assert_one_line_error, run

from edgehisto.bundle.manifest import MANIFEST, load_bundle, sha256_of
from edgehisto.errors import BundleNotVerified
from edgehisto.runtime.classifier import Classifier
from edgehisto.runtime.registry import DEFAULT_MODEL, embedded_bundles
from edgehisto.runtime.verify import keras_route, verify_bundle


@pytest.fixture
def default_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "idc-copy"
    shutil.copytree(embedded_bundles()[DEFAULT_MODEL], copy)
    return copy


def rehash(bundle: Path, **manifest_changes) -> None:
    """Re-record every file's sha256 (as an exporter would) after a deliberate change."""
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest.update(manifest_changes)
    for relative, entry in manifest["files"].items():
        entry["sha256"] = sha256_of(bundle / relative)
        entry["bytes"] = (bundle / relative).stat().st_size
    (bundle / MANIFEST).write_text(json.dumps(manifest, indent=2))


def test_the_embedded_default_verifies_on_this_machine(tmp_path):
    done = run("console script", "verify", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["passed"] and report["n_tiles"] >= 8
    names = {g["name"] for g in report["gates"]}
    assert {"onnx_fp32_max_abs_prob_diff", "gradcam_fp32_min_pearson", "int8_vs_export_max_abs_prob_diff",
            "int8_vs_export_label_agreement"} <= names
    # The embedded default's golden tiles are real tissue: int8 against Keras is gated, not only reported.
    assert {"onnx_int8_top1_agreement", "gradcam_int8_mean_pearson", "preprocessed_values_differing"} <= names
    assert report["cpu"].split()[0] in ("x86_64", "aarch64")


def test_a_golden_set_of_real_tiles_gates_int8_against_keras_too(tmp_path, default_copy):
    manifest = json.loads((default_copy / MANIFEST).read_text())
    rehash(default_copy, golden={**manifest["golden"], "source": "calibration draw from the training split"})
    done = run("console script", "verify", default_copy, "--json", cwd=tmp_path)
    names = {g["name"] for g in json.loads(done.stdout)["gates"]}
    assert {"onnx_int8_top1_agreement", "gradcam_int8_mean_pearson"} <= names


def test_the_golden_set_holds_both_classes_and_its_files_are_hashed():
    bundle = load_bundle(embedded_bundles()[DEFAULT_MODEL])
    golden = bundle.manifest["golden"]
    assert all(name in bundle.manifest["files"] for name in [*golden["tiles"], golden["expected"]])
    with np.load(bundle.file(golden["expected"])) as expected:
        top1 = expected["keras_top1__idc"]
        assert set(top1.tolist()) == {0, 1}
        side = bundle.manifest["stages"]["idc"]["activations_shape"][0]
        assert expected["keras_gradcam__idc"].shape == (len(golden["tiles"]), side, side)


def test_verify_fails_with_exit_1_when_this_machine_computes_other_int8_numbers(tmp_path, default_copy):
    expected_path = default_copy / "golden" / "expected.npz"
    with np.load(expected_path) as stored:
        expected = dict(stored)
    # As if the exporting machine had recorded int8 outputs 0.01 away from what we compute.
    expected["int8_probabilities__idc"] = np.clip(expected["int8_probabilities__idc"] + 0.01, 0, 1)
    np.savez_compressed(expected_path, **expected)
    rehash(default_copy)
    report = verify_bundle(default_copy, ("int8",))
    failed = {g.name for g in report.gates if not g.passed}
    assert failed == {"int8_vs_export_max_abs_prob_diff"}
    done = run("console script", "verify", default_copy, "--precision", "int8", cwd=tmp_path)
    assert done.returncode == 1 and "VERIFY FAILED" in done.stdout


def test_verify_of_a_tampered_bundle_or_one_without_a_golden_set_exits_2(tmp_path, default_copy):
    manifest = json.loads((default_copy / MANIFEST).read_text())
    del manifest["golden"]
    (default_copy / MANIFEST).write_text(json.dumps(manifest))
    done = run("console script", "verify", default_copy, cwd=tmp_path)
    assert done.returncode == 2 and "no golden set" in done.stderr
    assert_one_line_error(done)
    (default_copy / "golden" / "tiles" / "00.png").write_bytes(b"not the tile")
    done = run("console script", "verify", default_copy, cwd=tmp_path)
    assert done.returncode == 2 and "sha256" in done.stderr


def test_a_bundle_that_failed_its_gates_is_refused_unless_overridden_and_then_says_so(tmp_path, default_copy,
                                                                                       good_tile):
    manifest = json.loads((default_copy / MANIFEST).read_text())
    rehash(default_copy, parity={**manifest["parity"], "passed": False})
    with pytest.raises(BundleNotVerified, match="failed its parity gates"):
        Classifier(default_copy)
    done = run("console script", "classify", good_tile, "--model", default_copy, cwd=tmp_path)
    assert done.returncode == 2 and "failed its parity gates" in done.stderr
    assert_one_line_error(done)
    done = run("console script", "classify", good_tile, "--model", default_copy, "--allow-failed-parity",
               "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)[0]
    assert record["label"] and "failed its parity gates" in record["warning"]


def test_a_bundle_without_a_parity_verdict_is_refused(default_copy):
    manifest = json.loads((default_copy / MANIFEST).read_text())
    del manifest["parity"]
    (default_copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleNotVerified, match="no parity verdict"):
        Classifier(default_copy)


def test_models_shows_the_stored_verdict_and_this_machines_verify(tmp_path):
    done = run("console script", "models", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    default = next(row for row in json.loads(done.stdout) if row["default"])
    assert default["parity_passed"] is True and default["verified_here"] is True


def test_keras_routing_of_a_golden_tile_follows_the_manifest():
    class FakeBundle:
        entry_stage = "binary"
        routing = {"binary": {"benign": "benign_subtype", "malignant": "malignant_subtype"}}
        stages = {name: type("S", (), {"class_names": names})() for name, names in (
            ("binary", ("benign", "malignant")), ("benign_subtype", ("A", "F", "PT", "TA")),
            ("malignant_subtype", ("DC", "LC", "MC", "PC")))}

    expected = {"keras_top1__binary": np.array([1, 0]), "keras_top1__benign_subtype": np.array([3, 2]),
                "keras_top1__malignant_subtype": np.array([1, 0])}
    assert keras_route(FakeBundle(), expected, 0) == ("malignant_subtype", "LC")
    assert keras_route(FakeBundle(), expected, 1) == ("benign_subtype", "PT")
