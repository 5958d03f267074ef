"""Running TFLite files with the LiteRT interpreter (``ai-edge-litert``), int8 I/O handled.

``tf.lite.Interpreter`` is deprecated; this module imports no TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class LiteRTModel:
    """A TFLite model that maps float NHWC batches to float outputs, one image per invoke."""

    def __init__(self, path: str | Path, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        scale, zero_point = self.input["quantization"]
        if self.input["dtype"] == np.float32 or not scale:
            return x.astype(self.input["dtype"])
        info = np.iinfo(self.input["dtype"])
        return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(self.input["dtype"])

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        scale, zero_point = self.output["quantization"]
        if self.output["dtype"] == np.float32 or not scale:
            return y.astype(np.float32)
        return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)

    def predict_one(self, x: np.ndarray) -> np.ndarray:
        """Output for one image (1, H, W, 3) float -> float (1, K)."""
        self.interpreter.set_tensor(self.input["index"], self._quantize(x))
        self.interpreter.invoke()
        return self._dequantize(self.interpreter.get_tensor(self.output["index"]))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Outputs for a batch, invoking once per image (the model's batch dimension is 1)."""
        return np.concatenate([self.predict_one(x[i:i + 1]) for i in range(len(x))])


def probabilities(raw: np.ndarray, output: str) -> np.ndarray:
    """(N, K) class probabilities; a single sigmoid becomes [1 - p, p]."""
    raw = np.asarray(raw, np.float64)
    return np.concatenate([1.0 - raw, raw], axis=1) if output == "sigmoid" else raw
