"""The model variants a bench run compares, behind one small protocol: ``predict(x) -> probs``.

Keras fp32 is the reference; ONNX fp32/int8 run through the runtime's own ``Classifier``
(backbone + head sessions, as ``classify`` does); TFLite fp32/int8 run with LiteRT.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edgehisto.bundle.manifest import Bundle, StageSpec
from edgehisto.bundle.outputs import class_probabilities
from edgehisto.runtime.classifier import Classifier

VARIANTS = ("keras_fp32", "onnx_fp32", "onnx_int8", "tflite_fp32", "tflite_int8")


class Variant(Protocol):
    """One benchmarked form of a stage: predicts probabilities and names its files."""
    name: str

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N, K) class probabilities of a preprocessed batch."""

    def files(self) -> list[Path]:
        """The files this variant loads (for its size on disk)."""


@dataclass
class OnnxVariant:
    """A bundle stage run by the edgehisto runtime (onnxruntime) at one precision."""
    name: str
    classifier: Classifier
    stage: StageSpec

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N, K) class probabilities from the runtime's backbone and head."""
        return self.classifier.head(self.classifier.activations(x, self.stage), self.stage)[1]

    def gradcam(self, x: np.ndarray) -> np.ndarray:
        """Grad-CAM maps of the predicted class, as classify computes them."""
        return self.classifier.gradcam(x, self.stage.name)

    def files(self) -> list[Path]:
        """The backbone, head and gradient files of this precision."""
        bundle = self.classifier.bundle
        names = [self.stage.backbone(self.classifier.precision), self.stage.files["head"]]
        return [bundle.file(n) for n in names]


@dataclass
class TFLiteVariant:
    """A stage's TFLite file run by LiteRT."""
    name: str
    path: Path
    output: str
    threads: int | None
    output_name: str = "output_0"

    def __post_init__(self):
        from edgehisto.bundle.litert import LiteRTModel

        # LiteRT's default (num_threads=None) starts no worker thread: "all threads" must mean all
        # cores here, as it does for onnxruntime, or ONNX on 2 cores is compared with TFLite on 1.
        self.threads = self.threads or os.cpu_count()
        self.model = LiteRTModel(self.path, threads=self.threads, output=self.output_name)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N, K) class probabilities from LiteRT."""
        from edgehisto.bundle.litert import probabilities

        return probabilities(self.model.predict(x), self.output)

    def files(self) -> list[Path]:
        """The TFLite file."""
        return [self.path]


@dataclass
class KerasVariant:
    """The Keras reference model's ``predict`` (the baseline every ratio is against)."""
    name: str
    path: Path
    output: str
    probabilities_layer: str = "probabilities"

    def __post_init__(self):
        stat = Path(self.path).stat()  # in the key: a file rewritten at the same path is loaded again
        self.model = _reference_model(str(self.path), stat.st_mtime_ns, stat.st_size, self.probabilities_layer)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N, K) class probabilities from Keras ``predict``."""
        return class_probabilities(np.asarray(self.model.predict(x, verbose=0), np.float64), self.output)

    def files(self) -> list[Path]:
        """The reference .keras file."""
        return [self.path]


@functools.lru_cache(maxsize=4)
def _reference_model(path: str, _mtime_ns: int, _size: int, probabilities_layer: str):
    """A reference .keras file loaded once per bench run: a stage's table and the routed table both
    use it, and loading a DenseNet121 (and tracing its ``predict``) costs seconds each time."""
    import keras

    full = keras.models.load_model(path, compile=False)
    return keras.Model(full.input, full.get_layer(probabilities_layer).output)


def make_variant(kind: str, bundle: Bundle, stage: StageSpec, threads: int | None) -> Variant:
    """Build one variant of a bundle stage; ``threads=None`` means the engine's default (all cores)."""
    if kind == "keras_fp32":
        return KerasVariant(kind, bundle.file(stage.reference_keras), stage.output,
                            stage.reference_outputs["probabilities"])
    engine, precision = kind.split("_")
    if engine == "onnx":
        runtime = Classifier(bundle, precision=precision, threads=threads, allow_failed_parity=True)
        return OnnxVariant(kind, runtime, stage)
    return TFLiteVariant(kind, bundle.file(stage.files[f"tflite_{precision}"]), stage.output, threads,
                         stage.tflite_output)
