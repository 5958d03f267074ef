"""The manifest has one writer (bundle/manifest_writer.py) and is read through typed accessors."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from edgehisto.bundle.manifest import MANIFEST, load_bundle
from edgehisto.bundle.manifest_writer import update_manifest, write_manifest
from edgehisto.errors import UnsupportedManifest
from edgehisto.runtime.registry import BREAKHIS_MODEL, DEFAULT_MODEL, embedded_bundles


@pytest.fixture
def idc_copy(tmp_path):
    """A copy of the embedded IDC default, which ships every file it lists."""
    copy = tmp_path / DEFAULT_MODEL
    shutil.copytree(embedded_bundles()[DEFAULT_MODEL], copy)
    return copy


def test_rewriting_the_embedded_default_gives_its_manifest_byte_for_byte(idc_copy):
    before = (idc_copy / MANIFEST).read_bytes()
    write_manifest(idc_copy, json.loads(before))  # the files hashed again from the directory
    assert (idc_copy / MANIFEST).read_bytes() == before


@pytest.mark.parametrize("name", [DEFAULT_MODEL, BREAKHIS_MODEL])
def test_rewriting_an_embedded_manifest_without_hashing_keeps_its_bytes(tmp_path, name):
    source = embedded_bundles()[name] / MANIFEST
    (tmp_path / MANIFEST).write_bytes(source.read_bytes())
    write_manifest(tmp_path, json.loads(source.read_text()), hash_files=False)
    assert (tmp_path / MANIFEST).read_bytes() == source.read_bytes()


def test_a_manifest_built_in_memory_is_checked_as_it_will_be_read_back(idc_copy):
    """Export builds the manifest from PreprocessSpec.to_dict(), whose sizes are tuples: JSON writes lists."""
    from edgehisto.bundle.preprocess import PreprocessSpec

    before = (idc_copy / MANIFEST).read_bytes()
    manifest = json.loads(before)
    manifest["preprocess"] = PreprocessSpec.from_dict(manifest["preprocess"]).to_dict()
    assert isinstance(manifest["preprocess"]["input_size"], tuple)
    write_manifest(idc_copy, manifest)
    assert (idc_copy / MANIFEST).read_bytes() == before


def test_updating_an_entry_keeps_every_key_in_its_place(idc_copy):
    before = json.loads((idc_copy / MANIFEST).read_text())
    update_manifest(idc_copy, name="renamed", hash_files=False)
    after = json.loads((idc_copy / MANIFEST).read_text())
    assert list(after) == list(before) and after["name"] == "renamed"
    assert {k: v for k, v in after.items() if k != "name"} == {k: v for k, v in before.items() if k != "name"}


def test_a_manifest_the_runtime_would_refuse_is_never_written(idc_copy):
    before = (idc_copy / MANIFEST).read_bytes()
    manifest = json.loads(before)
    manifest["stages"]["idc"]["output"] = "relu"
    with pytest.raises(UnsupportedManifest, match="stages.idc.output"):
        write_manifest(idc_copy, manifest)
    with pytest.raises(UnsupportedManifest, match="schema_version"):
        update_manifest(idc_copy, schema_version=2)
    assert (idc_copy / MANIFEST).read_bytes() == before


def test_the_typed_accessors_say_what_the_manifest_says():
    path = embedded_bundles()[BREAKHIS_MODEL]
    raw = json.loads((path / MANIFEST).read_text())
    bundle = load_bundle(path)
    assert (bundle.name, bundle.arch, bundle.parity_passed) == (raw["name"], raw["arch"], raw["parity"]["passed"])
    assert bundle.expects == raw["expected_input"]["description"]
    assert bundle.class_names == {name: stage["class_names"] for name, stage in raw["stages"].items()}
    assert bundle.golden.tiles == tuple(raw["golden"]["tiles"]) and bundle.golden.synthetic
    assert bundle.golden.with_source("elsewhere") == {**raw["golden"], "source": "elsewhere"}
    assert {name: entry.sha256 for name, entry in bundle.files.items()} == {
        name: entry["sha256"] for name, entry in raw["files"].items()}
    assert bundle.quantization("binary") == raw["quantization"]["binary"] and bundle.quantization("none") == {}
    assert bundle.training_seed == raw["training"]["config"]["seed"]
    assert bundle.test_split == path / raw["reference"]["test_split"]
    assert str(bundle.reference_data_root) == raw["reference"]["data_root"]
    assert bundle.exported_at == raw["provenance"]["created"]
    binary = bundle.stages["binary"]
    assert binary.activations_shape == tuple(raw["stages"]["binary"]["activations_shape"])
    assert binary.reference_keras == raw["stages"]["binary"]["reference_keras"]
    assert binary.reference_outputs == raw["stages"]["binary"]["reference_outputs"]
    assert bundle.manifest_sha256 == hashlib.sha256((path / MANIFEST).read_bytes()).hexdigest()


def test_a_bare_manifest_reads_as_the_contract_defaults(tmp_path):
    from edgehisto.bundle.manifest import Bundle

    bundle = Bundle(tmp_path / "bare", {"task": "idc", "files": {}})
    assert (bundle.name, bundle.arch, bundle.parity_passed, bundle.golden) == ("bare", "single", None, None)
    assert (bundle.expects, bundle.training_seed, bundle.exported_at, bundle.made_with) == (None, 0, None, {})
    assert bundle.test_split == tmp_path / "bare" / "reference" / "test_split.csv"
