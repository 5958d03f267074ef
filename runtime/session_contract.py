"""Each ONNX file's inputs and outputs checked against the manifest when its session is made.

A valid model that is not the one the manifest describes (wrong tensor names, ranks, sizes or
class count) is refused with one line, before onnxruntime can fail on it mid-batch.
"""

from __future__ import annotations

import onnxruntime as ort

from edgehisto.bundle import tensors
from edgehisto.bundle.manifest import StageSpec
from edgehisto.errors import BundleError

# role -> (inputs, outputs) the runtime feeds and reads, with their ranks.
ROLES = {
    "backbone": ({tensors.IMAGE: 4}, {tensors.ACTIVATIONS: 4}),
    "head": ({tensors.ACTIVATIONS: 4}, {tensors.LOGITS: 2, tensors.PROBABILITIES: 2}),
    "head_gradient": ({tensors.ACTIVATIONS: 4, tensors.SEED: 2}, {tensors.GRADIENT: 4}),
}


def _static(dim) -> int | None:
    return dim if isinstance(dim, int) else None


def expected_dims(role: str, stage: StageSpec, input_size: tuple[int, int],
                  activations_shape: list[int] | None) -> dict[str, list[int | None]]:
    """The static dimensions (None: any) the manifest implies for each tensor of a role."""
    width = 1 if stage.output == "sigmoid" else len(stage.class_names)
    acts = [None, *activations_shape] if activations_shape else [None] * 4
    return {
        tensors.IMAGE: [None, *input_size, 3], tensors.ACTIVATIONS: acts, tensors.GRADIENT: acts,
        tensors.LOGITS: [None, width], tensors.PROBABILITIES: [None, width], tensors.SEED: [None, width],
    }


def check_session(session: ort.InferenceSession, relative: str, role: str, stage: StageSpec,
                  input_size: tuple[int, int], activations_shape: list[int] | None) -> None:
    """Raise ``BundleError`` naming the file and tensor when ``session`` breaks the contract."""
    wanted_inputs, wanted_outputs = ROLES[role]
    dims = expected_dims(role, stage, input_size, activations_shape)
    for kind, wanted, found in (("input", wanted_inputs, session.get_inputs()),
                                ("output", wanted_outputs, session.get_outputs())):
        by_name = {tensor.name: tensor for tensor in found}
        for name, rank in wanted.items():
            if name not in by_name:
                raise BundleError(f"bundle file {relative} has no {kind} {name!r} "
                                  f"(it has {sorted(by_name)}); it is not the {role} the manifest describes")
            shape = by_name[name].shape
            if len(shape) != rank:
                raise BundleError(f"bundle file {relative}: {kind} {name!r} has rank {len(shape)}, expected {rank}")
            for axis, (got, want) in enumerate(zip(shape, dims[name], strict=True)):
                if want is not None and _static(got) is not None and got != want:
                    raise BundleError(f"bundle file {relative}: {kind} {name!r} axis {axis} is {got}, "
                                      f"the manifest implies {want}")
