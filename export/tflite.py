"""Keras -> TFLite fp32 and full-integer int8 (representative data = the ONNX calibration images)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from edgehisto.export.converter_output import quiet_converter


def _converter(model: keras.Model) -> tf.lite.TFLiteConverter:
    return tf.lite.TFLiteConverter.from_keras_model(model)


def _convert(converter: tf.lite.TFLiteConverter) -> bytes:
    with quiet_converter():  # the converter dumps a TensorSpec per variable; see converter_output
        return converter.convert()


def convert_tflite_fp32(model: keras.Model, path: Path) -> None:
    """Whole model, float32, no optimisation (the parity reference for TFLite)."""
    path.write_bytes(_convert(_converter(model)))


def convert_tflite_int8(model: keras.Model, path: Path, calibration: np.ndarray) -> None:
    """Whole model, full-integer int8 including the input and output tensors.

    The representative dataset is the same training-image draw that calibrates ONNX int8, one
    image per step as the converter expects.
    """
    converter = _converter(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def representative():
        for image in calibration:
            yield [image[None].astype(np.float32)]

    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path.write_bytes(_convert(converter))
