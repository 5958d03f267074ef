"""onnxruntime static int8 quantisation of a backbone (QDQ, calibrated on training images).

Choices (measured on the IDC CNN and DenseNet121, see docs/int8-portability.md): QDQ format,
**uint8 activations and uint8 weights (U8U8) at full 8-bit range**, per-channel weight scales, MinMax
calibration. onnxruntime's AVX2 U8S8 kernels add pairs of u8 x s8 products into 16-bit sums
(``vpmaddubsw``), which saturate when both weights of a pair are near -128 or 127; with uint8 weights
the saturation is gone (measured: U8U8 outputs are bit-identical under QEMU as Haswell, the AVX2 CPU
that showed it, as natively with VNNI). The earlier way out, 7-bit U8S8 weights
(``reduce_range``), cost accuracy: on a demo IDC model it dropped 1.2 points of accuracy against fp32
(0.988 top-1 agreement, max |dp| 0.075) where U8U8 dropped 0.2 (0.998, max |dp| 0.013), and the
demo's parity gate failed in 3 runs of 5. U8U8 outputs are bit-identical natively (AVX-512 VNNI) and
under QEMU as Haswell (AVX2), Nehalem (SSE4.2), Cortex-A72 and Cortex-A76.

**Only ops with exact integer kernels are quantised** (``PORTABLE_OP_TYPES``). Elementwise Mul
and Add (DenseNet's pre-activation BatchNorm, which cannot fold into a convolution across the
concatenation, and the IDC CNN's) become QLinearMul/QLinearAdd, whose requantisation rounds
differently on ARM and x86: on the BreaKHis DenseNet121 the first differing tensor (101 of 3.1M
values, 1 step) was a BatchNorm Add in dense block 2, and the drift grew to 0.003 in output
probability on Cortex-A72/A76. Left in fp32 between a DequantizeLinear and a QuantizeLinear
(single IEEE multiplies and adds, the same on every CPU), every one of the DenseNet's 303
quantised tensors is bit-identical on AVX-512 VNNI, Haswell, Nehalem, Cortex-A72 and Cortex-A76,
for about 7% more int8 latency (measured on the golden tiles, AVX-512 VNNI).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgehisto.export.calibration import ImageCalibrationReader

# Convolutions and matrix products accumulate exact int32 sums (U8U8, see above); pooling
# and concatenation move or average quantised values. Mul and Add are left out on purpose.
PORTABLE_OP_TYPES = ("Conv", "MatMul", "Gemm", "Concat", "MaxPool", "AveragePool")


@dataclass(frozen=True)
class QuantizationChoice:
    """The recorded settings of one int8 quantisation."""

    format: str = "QDQ"
    activation_type: str = "QUInt8"
    weight_type: str = "QUInt8"
    per_channel: bool = True
    calibration_method: str = "MinMax"
    reduce_range: bool = False
    calibration_images: int = 0
    op_types: tuple[str, ...] = PORTABLE_OP_TYPES
    # Nodes after the last one whose name contains this (e.g. "pool4_pool", DenseNet's last transition)
    # stay fp32: the deepest layers feed the heads directly, where int8 rounding flips near-tied subtypes.
    fp32_after: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "op_types", tuple(self.op_types))  # a list when read back from JSON

    def to_dict(self) -> dict:
        """The settings as JSON-ready data (recorded in the manifest)."""
        return {**asdict(self), "op_types": list(self.op_types)}


def quantize_backbone(fp32_path: Path, int8_path: Path, images: np.ndarray,
                      choice: QuantizationChoice) -> QuantizationChoice:
    """Write an int8 QDQ model of ``fp32_path`` calibrated on ``images``; returns the record."""
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=False)
        excluded = _nodes_after(prepared, choice.fp32_after) if choice.fp32_after else []
        quantize_static(
            str(prepared), str(int8_path), ImageCalibrationReader(images),
            quant_format=QuantFormat[choice.format],
            activation_type=QuantType[choice.activation_type],
            weight_type=QuantType[choice.weight_type],
            per_channel=choice.per_channel,
            reduce_range=choice.reduce_range,
            calibrate_method=CalibrationMethod[choice.calibration_method],
            op_types_to_quantize=list(choice.op_types),
            nodes_to_exclude=excluded,
        )
    return QuantizationChoice(**{**choice.to_dict(), "calibration_images": int(len(images))})


def _nodes_after(model_path: Path, marker: str) -> list[str]:
    """Names of the nodes after the last node whose name contains ``marker`` (graph order is topological)."""
    import onnx

    from edgehisto.errors import ExportError

    names = [node.name for node in onnx.load(str(model_path), load_external_data=False).graph.node]
    hits = [i for i, name in enumerate(names) if marker in name]
    if not hits:
        raise ExportError(f"--fp32-after {marker!r}: no node of the backbone has that in its name")
    return names[hits[-1] + 1:]
