"""The runtime room: bundle loading, preprocessing, onnxruntime inference and Grad-CAM.

Depends on numpy, onnxruntime and OpenCV only. Nothing here imports TensorFlow, tf2onnx,
``edgehisto.train`` or ``edgehisto.export`` (``tests/test_runtime_isolation.py`` proves it).
"""

# No OpenCV pixel limit is set here: ``bundle.images`` checks every accepted format's header
# against the preprocessing spec's ``max_pixels`` before OpenCV decodes anything, and refuses
# other formats, so the guard does not depend on who imported OpenCV first.
from edgehisto.bundle.manifest import Bundle, load_bundle
from edgehisto.runtime.classifier import Classifier, StageResult, TileResult

__all__ = ["Bundle", "Classifier", "StageResult", "TileResult", "load_bundle"]
