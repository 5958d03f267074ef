"""What a bundle's model expects to see, and the warning when an input is far from it.

The manifest's optional ``expected_input`` declares the kind of image the model was trained on::

    "expected_input": {"description": "a 50x50 IDC patch (40X)", "size": [50, 50],
                       "min_scale": 0.5, "max_scale": 2.0, "max_aspect_change": 1.35}

The rule, for an input of height h and width w against the declared size (H, W):

- scale = sqrt(h * w / (H * W)), the linear size ratio by area. It must lie within
  [min_scale, max_scale].
- aspect change = max(r, 1 / r) where r = (w / h) / (W / H). It must be at most
  max_aspect_change. A portrait field is turned (h and w swapped) before comparing, because a
  rotated field is the same kind of image.

Outside either bound, the record carries a ``warning`` that names the input's size and what the
model expects. The label is still given. Bundles without ``expected_input`` get no such warning.

``squashed_sizes`` (optional) lists sizes at which whole fields were published resized without
keeping their aspect ratio (BreaKHis 200X fields squashed to 224x224): an input of exactly such a size
is the expected kind too, since the model's own preprocessing squashes every field the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgehisto.errors import UnsupportedManifest


@dataclass(frozen=True)
class ExpectedInput:
    """The declared input kind of a bundle (see the module docstring for the rule)."""

    description: str
    size: tuple[int, int]  # (height, width)
    min_scale: float = 0.5
    max_scale: float = 2.0
    max_aspect_change: float = 1.35
    squashed_sizes: tuple[tuple[int, int], ...] = ()  # (height, width) of whole fields published squashed

    def to_dict(self) -> dict:
        """The manifest's ``expected_input`` object."""
        out = {"description": self.description, "size": list(self.size), "min_scale": self.min_scale,
               "max_scale": self.max_scale, "max_aspect_change": self.max_aspect_change}
        if self.squashed_sizes:
            out["squashed_sizes"] = [list(size) for size in self.squashed_sizes]
        return out

    @classmethod
    def from_manifest(cls, manifest: dict) -> ExpectedInput | None:
        """The manifest's declaration, or None when it has none; raises ``UnsupportedManifest`` if malformed."""
        data = manifest.get("expected_input")
        if data is None:
            return None
        try:
            height, width = (int(v) for v in data["size"])
            squashed = tuple((int(h), int(w)) for h, w in data.get("squashed_sizes", ()))
            made = cls(str(data["description"]), (height, width), float(data["min_scale"]),
                       float(data["max_scale"]), float(data["max_aspect_change"]), squashed)
        except (KeyError, TypeError, ValueError, OverflowError) as error:
            raise UnsupportedManifest(f"manifest field expected_input: malformed ({type(error).__name__})") from None
        numbers = (made.min_scale, made.max_scale, made.max_aspect_change)
        if not (min(made.size) >= 1 and all(math.isfinite(v) for v in numbers)
                and 0 < made.min_scale <= 1 <= made.max_scale and made.max_aspect_change >= 1):
            raise UnsupportedManifest("manifest field expected_input: sizes >= 1 and "
                                      "0 < min_scale <= 1 <= max_scale, max_aspect_change >= 1 expected")
        return made

    def check(self, height: int, width: int) -> str | None:
        """The warning for an input of this size, or None when it is the expected kind."""
        if (height, width) in self.squashed_sizes:
            return None
        expected_h, expected_w = self.size
        scale = math.sqrt(height * width / (expected_h * expected_w))
        h, w = height, width
        if (h > w) != (expected_h > expected_w) and h != w and expected_h != expected_w:
            h, w = w, h  # a turned field
        ratio = (w / h) / (expected_w / expected_h)
        aspect = max(ratio, 1 / ratio)
        if self.min_scale <= scale <= self.max_scale and aspect <= self.max_aspect_change:
            return None
        return (f"input is {width}x{height}, far from what this model expects ({self.description}, "
                f"{expected_w}x{expected_h}); the label is given but may be meaningless")


FLAT_RANGE = 2  # grey levels: a channel spanning no more than this is one flat colour


def blank_warning(rgb: np.ndarray) -> str | None:
    """The warning for an image of one flat colour (a blank capture, a grey frame), else None.

    Looked at on every fourth pixel each way: a flat image is flat there too, and a field costs
    about a tenth of a millisecond.
    """
    sample = rgb[::4, ::4].reshape(-1, rgb.shape[-1])
    if int((sample.max(axis=0).astype(int) - sample.min(axis=0)).max()) <= FLAT_RANGE:
        return ("the image is one flat colour (blank: no tissue to classify); the label is given but "
                "is meaningless")
    return None
