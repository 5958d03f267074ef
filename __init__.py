"""edgehisto: lightweight, TensorFlow-free inference for breast-histopathology tiles.

The package is split into rooms with one-way doors:
``train`` (Keras) -> ``export`` (bundle writer + parity gates) -> ``runtime`` (onnxruntime only).
``bench`` reads bundles. Importing ``edgehisto`` or ``edgehisto.runtime`` never loads TensorFlow.
"""

__version__ = "0.1.0"
