"""One model registry: names, builders, output kinds and Grad-CAM layers have one home."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgehisto.errors import EdgehistoError, UnknownModel
from edgehisto.train.models import MODELS, arch_models, model_names, model_spec


def test_an_unknown_model_name_raises_an_error_listing_every_valid_name():
    with pytest.raises(UnknownModel) as raised:
        model_spec("resnet")
    assert isinstance(raised.value, KeyError) and isinstance(raised.value, EdgehistoError)
    assert all(name in str(raised.value) for name in MODELS)
    assert str(raised.value).startswith("unknown model 'resnet'")  # not KeyError's quoted repr


def test_a_model_of_another_task_is_refused_with_the_tasks_valid_names():
    with pytest.raises(UnknownModel, match="unknown idc model 'densenet121'; choose one of: idc_cnn$"):
        model_spec("densenet121", task="idc")


def test_every_task_model_is_registered_with_an_output_kind_and_a_gradcam_layer():
    assert model_names("idc") == ["idc_cnn"]
    assert arch_models("breakhis") == {"hierarchy": "densenet121", "multitask": "densenet121_multitask"}
    for spec in MODELS.values():
        assert spec.output in ("sigmoid", "softmax") and spec.gradcam_layer


def test_the_idc_models_native_size_is_the_datasets_tile_size():
    from edgehisto.datasets.idc import TILE_SIZE
    from edgehisto.train.idc import idc_preprocess_spec

    assert MODELS["idc_cnn"].native_size == TILE_SIZE
    assert idc_preprocess_spec(128).pad_to == (TILE_SIZE, TILE_SIZE)


def test_reading_the_registry_and_the_train_cli_loads_no_keras():
    code = ("import json, sys; import edgehisto.train.models, edgehisto.train.cli_train; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_every_registered_builder_exists_and_names_its_gradcam_layer():
    pytest.importorskip("tensorflow")
    from edgehisto.train import architectures
    from edgehisto.train.models import create_model

    for spec in MODELS.values():
        assert callable(getattr(architectures, spec.builder))
    model = create_model("idc_cnn", input_size=32)
    assert model.get_layer(MODELS["idc_cnn"].gradcam_layer).output.shape[1:] == (4, 4, 256)
    assert model.get_layer("probabilities").get_config()["activation"] == MODELS["idc_cnn"].output
