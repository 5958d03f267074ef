"""The model registry: every model ``train`` can build, with the facts train, export and the CLI read.

Adding a model is one builder function in ``train/architectures.py`` and one entry in ``MODELS``.
Training writes an entry's output kind and Grad-CAM layer into ``run.json``, which export reads;
the ``train`` commands offer the registered names as their choices. This module imports no Keras,
so listing the choices never loads TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgehisto.datasets.idc import TILE_SIZE as IDC_TILE_SIZE
from edgehisto.errors import UnknownModel

DEFAULT_INPUT_SIZE = 128  # the seed's model input side (IDC tiles upsampled, BreaKHis images downsampled)


@dataclass(frozen=True)
class ModelSpec:
    """What train, export and the CLI need to know about a registered model."""

    builder: str  # name of its builder function in ``edgehisto.train.architectures``
    task: str  # the ``data.tasks`` task it is trained on
    arch: str  # how the task's stages use it: "single", "hierarchy" (one model per stage), "multitask"
    output: str  # "sigmoid" (one logit, two classes) or "softmax" (see ``bundle.outputs``)
    gradcam_layer: str  # the layer whose activations Grad-CAM weighs (the exported backbone's output)
    default_input_size: int = DEFAULT_INPUT_SIZE
    native_size: int | None = None  # side of the dataset's tiles; None: whole images are resized


MODELS: dict[str, ModelSpec] = {
    "idc_cnn": ModelSpec("build_idc_cnn", "idc", "single", "sigmoid", "separable_conv2d",
                         native_size=IDC_TILE_SIZE),
    "densenet121": ModelSpec("build_densenet_classifier", "breakhis", "hierarchy", "softmax", "relu"),
    "densenet121_multitask": ModelSpec("build_densenet_multitask", "breakhis", "multitask", "softmax", "relu"),
}


def model_spec(name: str, task: str | None = None) -> ModelSpec:
    """The registry entry of ``name`` (a model of ``task``, if given).

    Raises ``UnknownModel`` (a KeyError) listing the valid names.
    """
    valid = model_names(task) if task else list(MODELS)
    if name not in valid:
        kind = f"{task} model" if task else "model"
        raise UnknownModel(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(valid))}")
    return MODELS[name]


def model_names(task: str) -> list[str]:
    """The registered models of a task, in registry order."""
    return [name for name, spec in MODELS.items() if spec.task == task]


def arch_models(task: str) -> dict[str, str]:
    """``arch -> model name`` of a task's models (BreaKHis: hierarchy and multitask)."""
    return {MODELS[name].arch: name for name in model_names(task)}


def create_model(name: str, input_size: int | None = None, **kwargs):
    """Build a registered model (``input_size`` defaults to the model's) as a Keras model."""
    from edgehisto.train import architectures

    spec = model_spec(name)
    return getattr(architectures, spec.builder)(input_size=input_size or spec.default_input_size, **kwargs)
