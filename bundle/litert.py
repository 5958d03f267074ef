"""Running TFLite files with the LiteRT interpreter (``ai-edge-litert``), int8 I/O handled.

``tf.lite.Interpreter`` is deprecated; this module imports no TensorFlow. Outputs are read by
name through the model's serving signature, so one multi-output file (the multitask model) can
serve several stages. It lives with the contract because export's parity gates and bench both run
a bundle's TFLite files and neither room may import the other; the runtime never runs them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgehisto.bundle.outputs import class_probabilities


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if detail["dtype"] == np.float32 or not scale:
        return x.astype(detail["dtype"])
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(detail["dtype"])


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if detail["dtype"] == np.float32 or not scale:
        return y.astype(np.float32)
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)


class LiteRTModel:
    """A TFLite model mapping float NHWC batches to one named float output, one image per invoke."""

    def __init__(self, path: str | Path, threads: int | None = None, output: str | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.runner = self.interpreter.get_signature_runner()
        inputs, outputs = self.runner.get_input_details(), self.runner.get_output_details()
        (self.input_name, self.input), = inputs.items()
        if output is None:
            if len(outputs) != 1:
                raise ValueError(f"{path} has outputs {sorted(outputs)}; name one")
            output = next(iter(outputs))
        self.output_name, self.output = output, outputs[output]

    def predict_one(self, x: np.ndarray) -> np.ndarray:
        """Output for one image (1, H, W, 3) float -> float (1, K)."""
        raw = self.runner(**{self.input_name: _quantize(x, self.input)})[self.output_name]
        return _dequantize(raw, self.output)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Outputs for a batch, invoking once per image (the model's batch dimension is 1)."""
        return np.concatenate([self.predict_one(x[i:i + 1]) for i in range(len(x))])


def probabilities(raw: np.ndarray, output: str) -> np.ndarray:
    """(N, K) float64 class probabilities of a LiteRT output (see ``bundle.outputs``)."""
    return class_probabilities(np.asarray(raw, np.float64), output)
