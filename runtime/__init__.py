"""The runtime room: bundle loading, preprocessing, onnxruntime inference and Grad-CAM.

Depends on numpy, onnxruntime and OpenCV only. Nothing here imports TensorFlow, tf2onnx,
``edgehisto.train`` or ``edgehisto.export`` (``tests/test_runtime_isolation.py`` proves it).
"""

import os

# OpenCV reads its decoder pixel limit once, when it is first imported. Keep it well below the
# 1 Gpx default so a decompression bomb in a format we do not sniff still fails fast.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(64_000_000))

from edgehisto.bundle.manifest import Bundle, load_bundle  # noqa: E402
from edgehisto.runtime.classifier import Classifier, StageResult, TileResult  # noqa: E402

__all__ = ["Bundle", "Classifier", "StageResult", "TileResult", "load_bundle"]
