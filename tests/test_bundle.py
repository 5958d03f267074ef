"""The exported bundle honours its contract: a complete manifest and sha256-verified files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgehisto.bundle.manifest import FILE_ROLES, MANIFEST, SCHEMA_VERSION, load_bundle, sha256_of
from edgehisto.errors import BundleIntegrityError, BundleNotFound, UnsupportedManifest

pytest.importorskip("tensorflow")  # the idc_bundle fixture trains and exports a model


@pytest.fixture(scope="module")
def manifest(idc_bundle: Path) -> dict:
    return json.loads((idc_bundle / MANIFEST).read_text())


def test_manifest_names_its_schema_task_and_classes(manifest):
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["task"] == "idc"
    assert manifest["entry_stage"] == "idc"
    stage = manifest["stages"]["idc"]
    assert stage["class_names"] == ["IDC-negative", "IDC-positive"]
    assert stage["output"] == "sigmoid"


def test_idc_stage_has_the_seed_models_parameter_count(manifest):
    assert manifest["stages"]["idc"]["n_params"] == 171_329


def test_manifest_carries_the_training_preprocess_spec(manifest):
    spec = manifest["preprocess"]
    assert spec["input_size"] == [50, 50]  # the fixture trains at the CNN's native size
    assert spec["scale"] == pytest.approx(1 / 255, abs=1e-12)
    assert spec["pad_to"] == [50, 50]


def test_every_listed_file_exists_with_its_sha256_and_size(idc_bundle, manifest):
    assert manifest["files"], "the manifest lists no files"
    for relative, entry in manifest["files"].items():
        path = idc_bundle / relative
        assert path.is_file(), relative
        assert sha256_of(path) == entry["sha256"], relative
        assert path.stat().st_size == entry["bytes"], relative


def test_the_bundle_holds_no_unlisted_files_but_the_manifest_and_parity_report(idc_bundle, manifest):
    present = {p.relative_to(idc_bundle).as_posix() for p in idc_bundle.rglob("*") if p.is_file()}
    assert present - set(manifest["files"]) == {MANIFEST, "parity.json"}


def test_every_stage_file_is_listed_in_the_manifest(manifest):
    for stage in manifest["stages"].values():
        for role in FILE_ROLES:
            assert stage["files"][role] in manifest["files"], role


def test_parity_report_and_manifest_both_say_parity_passed(idc_bundle, manifest):
    report = json.loads((idc_bundle / "parity.json").read_text())
    assert report["passed"] is True
    assert all(gate["passed"] for gate in report["gates"])
    assert manifest["parity"]["passed"] is True
    assert manifest["parity"]["report"] == "parity.json"


def test_loading_a_bundle_with_a_tampered_file_raises_bundle_integrity_error(idc_bundle, tmp_path):
    copy = Path(shutil.copytree(idc_bundle, tmp_path / "bundle"))
    head = copy / "idc" / "head.onnx"
    data = bytearray(head.read_bytes())
    data[len(data) // 2] ^= 0xFF
    head.write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError, match="sha256") as caught:
        load_bundle(copy)
    assert isinstance(caught.value, ValueError)
    assert "idc/head.onnx" in str(caught.value)


def test_loading_a_bundle_with_a_missing_file_raises_bundle_integrity_error(idc_bundle, tmp_path):
    copy = Path(shutil.copytree(idc_bundle, tmp_path / "bundle"))
    (copy / "idc" / "head_gradient.onnx").unlink()
    with pytest.raises(BundleIntegrityError, match="missing"):
        load_bundle(copy)


def _without_output(manifest):
    del manifest["stages"]["idc"]["output"]


def _without_gradient_file(manifest):
    del manifest["stages"]["idc"]["files"]["head_gradient"]


def _unknown_entry_stage(manifest):
    manifest["entry_stage"] = "subtype"


@pytest.mark.parametrize("break_manifest, message", [
    (_without_output, "lacks output"),
    (_without_gradient_file, "lacks files.head_gradient"),
    (_unknown_entry_stage, "entry_stage: expected the name of a stage, got 'subtype'"),
])
def test_a_manifest_with_a_malformed_stage_raises_unsupported_manifest(
        manifest, tmp_path, break_manifest, message):
    # Before the fix these escaped as a KeyError (a traceback and exit 1) when the CLI ran.
    broken = json.loads(json.dumps(manifest))
    break_manifest(broken)
    (tmp_path / MANIFEST).write_text(json.dumps(broken))
    with pytest.raises(UnsupportedManifest, match=message):
        load_bundle(tmp_path)


def test_loading_a_missing_directory_raises_bundle_not_found(tmp_path):
    with pytest.raises(BundleNotFound) as caught:
        load_bundle(tmp_path / "no_such_bundle")
    assert isinstance(caught.value, FileNotFoundError)


def test_the_untouched_bundle_loads_and_verifies(idc_bundle):
    bundle = load_bundle(idc_bundle)
    assert set(bundle.stages) == {"idc"}
    assert bundle.preprocess.input_size == (50, 50)
