"""Pictures for the page: an RGB array as a PNG data URL (the kiosk writes nothing to disk)."""

from __future__ import annotations

import base64

import cv2
import numpy as np


def data_url(rgb: np.ndarray) -> str:
    """``data:image/png;base64,...`` of an RGB uint8 array."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("cannot encode a PNG")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")
