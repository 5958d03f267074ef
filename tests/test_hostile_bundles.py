"""Hostile or broken bundles: every one refused with a one-line error naming the problem (exit 2)."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_exit_codes import assert_one_line_error, run

from edgehisto.bundle.manifest import MANIFEST, load_bundle, sha256_of
from edgehisto.errors import BundleError, BundleIntegrityError, UnsupportedManifest
from edgehisto.runtime.classifier import Classifier
from edgehisto.runtime.registry import DEFAULT_MODEL, embedded_bundles


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(embedded_bundles()[DEFAULT_MODEL], copy)
    return copy


def edit_manifest(bundle: Path, change) -> None:
    manifest = json.loads((bundle / MANIFEST).read_text())
    change(manifest)
    (bundle / MANIFEST).write_text(json.dumps(manifest))


def _set(path: str, value):
    """A manifest edit that sets a dotted path (``preprocess.std``) to ``value``."""
    def change(manifest):
        *parents, last = path.split(".")
        node = manifest
        for key in parents:
            node = node[key]
        node[last] = value
    return change


def _delete(path: str):
    def change(manifest):
        *parents, last = path.split(".")
        node = manifest
        for key in parents:
            node = node[key]
        del node[last]
    return change


MALFORMED = {
    "std of length 2": (_set("preprocess.std", [1.0, 1.0]), "preprocess.std"),
    "std of zeros": (_set("preprocess.std", [0, 0, 0]), "preprocess.std"),
    "mean as a string": (_set("preprocess.mean", "0,0,0"), "preprocess.mean"),
    "negative input_size": (_set("preprocess.input_size", [-128, 128]), "preprocess.input_size"),
    "zero input_size": (_set("preprocess.input_size", [0, 0]), "preprocess.input_size"),
    "absurd input_size": (_set("preprocess.input_size", [100000, 100000]), "preprocess.input_size"),
    "scalar input_size": (_set("preprocess.input_size", 128), "preprocess.input_size"),
    "missing input_size": (_delete("preprocess.input_size"), "preprocess.input_size"),
    "absurd pad_to": (_set("preprocess.pad_to", [20000, 20000]), "preprocess.pad_to"),
    "unknown resize_method": (_set("preprocess.resize_method", "lanczos9"), "preprocess.resize_method"),
    "BGR colour order": (_set("preprocess.color_order", "BGR"), "preprocess.color_order"),
    "NCHW layout": (_set("preprocess.layout", "NCHW"), "preprocess.layout"),
    "scale as a string": (_set("preprocess.scale", "1/255"), "preprocess.scale"),
    "max_pixels as a string": (_set("preprocess.max_pixels", "lots"), "preprocess.max_pixels"),
    "unknown output kind": (_set("stages.idc.output", "tanh"), "stages.idc.output"),
    "three classes on a sigmoid": (_set("stages.idc.class_names", ["a", "b", "c"]), "stages.idc.class_names"),
    "one class": (_set("stages.idc.class_names", ["only"]), "stages.idc.class_names"),
    "entry_stage as a list": (_set("entry_stage", ["idc"]), "entry_stage"),
    "routing to an unknown stage": (_set("routing", {"idc": {"IDC-positive": "nowhere"}}), "routing.idc"),
    "routing from an unknown label": (_set("routing", {"idc": {"maybe": "idc"}}), "routing.idc.maybe"),
    "routing in a loop": (_set("routing", {"idc": {"IDC-positive": "idc"}}), "cycle"),
    "schema_version true": (_set("schema_version", True), "schema_version"),
    "task as a number": (_set("task", 7), "task"),
    "a files entry escaping the bundle": (
        lambda m: m["files"].update({"../../../../etc/passwd": {"sha256": "0" * 64, "bytes": 1}}), "inside the bundle"),
    "an absolute files entry": (
        lambda m: m["files"].update({"/etc/passwd": {"sha256": "0" * 64, "bytes": 1}}), "inside the bundle"),
    "a stage path escaping the bundle": (_set("stages.idc.files.backbone_fp32", "../../evil/backbone.onnx"),
                                         "inside the bundle"),
    "a stage file not listed in files": (lambda m: m["files"].pop("idc/head.onnx"), "not listed"),
    "a malformed sha256": (lambda m: m["files"]["idc/head.onnx"].update({"sha256": "abc"}), "sha256"),
    "expected_input without its size": (lambda m: m["expected_input"].pop("size"), "expected_input"),
    "expected_input scale bounds reversed": (_set("expected_input.min_scale", 3.0), "expected_input"),
    "a golden tile outside the bundle": (lambda m: m["golden"]["tiles"].append("../../secret.png"),
                                         "golden.tiles"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_manifest_is_refused_naming_the_field(case, bundle):
    change, field = MALFORMED[case]
    edit_manifest(bundle, change)
    with pytest.raises(UnsupportedManifest, match=field.replace(".", r"\.").replace("(", r"\(")) as caught:
        load_bundle(bundle)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("case", ["std of zeros", "routing in a loop", "a files entry escaping the bundle"])
def test_the_cli_refuses_a_malformed_manifest_with_exit_2_and_one_line(case, bundle, good_tile, tmp_path):
    edit_manifest(bundle, MALFORMED[case][0])
    done = run("console script", "classify", good_tile, "--model", bundle, "--format", "json", cwd=tmp_path)
    assert done.returncode == 2
    assert_one_line_error(done)
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_link_that_leads_outside_the_bundle_is_refused(bundle, tmp_path):
    outside = tmp_path / "outside.onnx"
    shutil.copy(bundle / "idc" / "head.onnx", outside)
    (bundle / "idc" / "head.onnx").unlink()
    (bundle / "idc" / "head.onnx").symlink_to(outside)
    with pytest.raises(BundleIntegrityError, match="outside the bundle"):
        load_bundle(bundle)


def test_a_file_swapped_after_loading_is_refused_not_run(bundle):
    classifier = Classifier(bundle, precision="int8")
    target = bundle / "idc" / "backbone.int8.onnx"
    shutil.copy(bundle / "idc" / "backbone.fp32.onnx", target)  # a valid model, not the hashed one
    with pytest.raises(BundleIntegrityError, match="changed since its sha256 was checked"):
        classifier.classify_arrays([np.zeros((50, 50, 3), np.uint8)])


def test_a_valid_model_that_breaks_the_contract_is_refused_by_name(bundle):
    # The head swapped for the backbone, with the manifest's sha256 updated: hashes pass, names don't.
    shutil.copy(bundle / "idc" / "backbone.fp32.onnx", bundle / "idc" / "head.onnx")
    def rehash(manifest):
        manifest["files"]["idc/head.onnx"]["sha256"] = sha256_of(bundle / "idc" / "head.onnx")
    edit_manifest(bundle, rehash)
    with pytest.raises(BundleError, match="idc/head.onnx has no input 'activations'"):
        Classifier(bundle).classify_arrays([np.zeros((50, 50, 3), np.uint8)])


def test_sessions_are_created_once_whatever_the_threads(bundle, monkeypatch):
    import edgehisto.runtime.classifier as classifier_module

    created = []
    real = classifier_module.make_session

    def counting(*args, **kwargs):
        created.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(classifier_module, "make_session", counting)
    classifier = Classifier(bundle)
    tiles = [np.full((50, 50, 3), 200, np.uint8)]
    threads = [threading.Thread(target=classifier.classify_arrays, args=(tiles, True)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(created) == 3  # backbone, head, head_gradient: one session each


# Checks that span fields cannot be written in JSON Schema; the plain-code validator makes them.
CROSS_FIELD = {"three classes on a sigmoid", "routing to an unknown stage", "routing from an unknown label",
               "routing in a loop", "a stage file not listed in files"}


def test_the_published_json_schema_accepts_the_real_manifest_and_rejects_what_the_validator_rejects(bundle):
    jsonschema = pytest.importorskip("jsonschema")
    from edgehisto.bundle.schema import SCHEMA_FILE

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    pristine = json.loads((bundle / MANIFEST).read_text())
    assert list(validator.iter_errors(pristine)) == []
    for case, (change, _) in MALFORMED.items():
        manifest = json.loads(json.dumps(pristine))
        change(manifest)
        rejected = bool(list(validator.iter_errors(manifest)))
        assert rejected == (case not in CROSS_FIELD), case


# A short, seeded run in make test; `make fuzz` sets EDGEHISTO_FUZZ_EXAMPLES for a long one.
FUZZ_EXAMPLES = int(os.environ.get("EDGEHISTO_FUZZ_EXAMPLES", "300"))


@settings(max_examples=FUZZ_EXAMPLES, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                                   children, max_size=4),
                    max_leaves=20),
       st.sampled_from(["preprocess", "stages", "routing", "files", "entry_stage", "schema_version", "task",
                        "preprocess.input_size", "preprocess.std", "stages.idc", "stages.idc.files",
                        "stages.idc.class_names", "routing.idc"]))
def test_fuzzed_manifests_raise_nothing_but_unsupported_manifest(pristine_manifest, tmp_path_factory, value, field):
    manifest = json.loads(json.dumps(pristine_manifest))
    try:
        _set(field, value)(manifest)
    except (KeyError, TypeError):
        return  # the field's parent was replaced by something else: nothing to fuzz here
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / MANIFEST).write_text(json.dumps(manifest))
    try:
        load_bundle(folder, verify=False)
    except UnsupportedManifest as error:
        assert "\n" not in str(error)


@pytest.fixture(scope="module")
def pristine_manifest() -> dict:
    return json.loads((embedded_bundles()[DEFAULT_MODEL] / MANIFEST).read_text())
