"""``RunInfo``: the one reader and writer of a run directory's ``run.json``."""

from __future__ import annotations

import json

from edgehisto.bundle.preprocess import PreprocessSpec
from edgehisto.datasets.run_info import RunInfo, RunStage, run_info_file

# As read back from JSON (lists, not tuples).
PREPROCESS = json.loads(json.dumps(PreprocessSpec(input_size=(50, 50), pad_to=(50, 50), notes=["padded"]).to_dict()))
IDC_RUN = {
    "task": "idc", "model": "idc_cnn", "output": "sigmoid", "class_names": ["0", "1"],
    "gradcam_layer": "separable_conv2d", "preprocess": PREPROCESS, "config": {"seed": 0, "epochs": 2},
    "data_dir": "/data/idc", "problems": [{"path": "/data/idc/8863/0/x.png", "reason": "too small"}],
    "class_weight": None, "n_params": 171329, "epochs_run": 2,
    "load_failures": {"train": [["8863/0/y.png", "unreadable"]], "val": [], "test": []},
    "provenance": {"versions": {"keras": "3"}},
}
BREAKHIS_STAGE = {"name": "binary", "model_file": "multitask.keras", "class_names": ["benign", "malignant"],
                  "output": "softmax", "gradcam_layer": "relu", "logits_layer": "binary_logits",
                  "probabilities_layer": "binary_probabilities"}
BREAKHIS_RUN = {
    "task": "breakhis", "arch": "multitask", "preprocess": PREPROCESS, "config": {"seed": 1, "weights": "imagenet"},
    "data_dir": "/data/breakhis", "routing": {"binary": {"benign": "benign_subtype"}},
    "stages": [BREAKHIS_STAGE], "class_weight": {"binary": None}, "n_params": {"multitask": 7_000_000},
    "provenance": {"versions": {}}, "problems": [],
}


def test_an_idc_run_json_is_written_back_byte_for_byte():
    assert json.dumps(RunInfo.from_dict(IDC_RUN).to_dict(), indent=2) == json.dumps(IDC_RUN, indent=2)


def test_a_breakhis_run_json_keeps_every_value_with_typed_stages():
    run = RunInfo.from_dict(BREAKHIS_RUN)
    assert run.stages == [RunStage(**BREAKHIS_STAGE)] and run.preprocess.input_size == (50, 50)
    assert json.loads(json.dumps(run.to_dict())) == BREAKHIS_RUN
    assert run.model is None and "model" not in run.to_dict()


def test_keys_this_version_does_not_know_round_trip(tmp_path):
    older = {**BREAKHIS_RUN, "stages": [{**BREAKHIS_STAGE, "threshold": 0.4}], "notes": "from an older version"}
    RunInfo.from_dict(older).write(tmp_path)
    assert json.loads(run_info_file(tmp_path).read_text()) == older
    assert RunInfo.load(tmp_path).extra == {"notes": "from an older version"}


def test_a_written_run_loads_as_the_same_record(tmp_path):
    run = RunInfo.from_dict(IDC_RUN)
    assert run.write(tmp_path) == tmp_path / "run.json"
    assert RunInfo.load(tmp_path) == run
