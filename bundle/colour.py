"""Per-image colour normalisation of the model input, in exact integer arithmetic.

H&E colour differs from slide to slide (stain batch, section thickness, scanner), and a model trained
on few patients learns those casts as if they were tissue. ``channel_stats_exact`` is Reinhard's
colour transfer done per RGB channel: each channel of the resized tile is shifted and scaled so that
its mean and standard deviation become the declared targets,

    out = target_mean + (x - mean) * target_std / std,

with the tile's own mean and std. It runs after the resize, on the model input itself, so the
kiosk's "model input" picture shows what the model saw.

Every step is integer: with n pixels, S = sum(x) and Q = sum(x*x) of a channel, ``D = n*Q - S*S``
and ``r = isqrt(D * 2**32)`` (sqrt(D) with 16 fractional bits), the shift-and-scale is
``round((n*x - S) * target_std * 2**16 / r)``. No float enters,
so every CPU and numpy build gives the same bytes (the bundle's golden tensors check it). A channel
with no spread (D = 0: a flat tile) is only moved to the target mean.
"""

from __future__ import annotations

import math

import numpy as np

METHODS = ("channel_stats_exact",)
# The targets the BreaKHis recipe declares: the average per-patch channel mean and std of 3,000 real
# IDC patches (another dataset, so no BreaKHis image, held out or not, sets them).
IDC_TARGET_MEAN = (204, 159, 185)
IDC_TARGET_STD = (24, 37, 27)


def normalise_colour(rgb: np.ndarray, method: str, target_mean, target_std) -> np.ndarray:
    """The uint8 RGB tile (H, W, 3) with each channel's mean and std moved to the targets."""
    if method not in METHODS:
        raise ValueError(f"unknown colour normalisation {method!r} (known: {', '.join(METHODS)})")
    pixels = rgb.reshape(-1, 3).astype(np.int64)
    n = pixels.shape[0]
    out = np.empty_like(pixels)
    for c in range(3):
        x = pixels[:, c]
        total, squares = int(x.sum()), int((x * x).sum())
        spread = math.isqrt((n * squares - total * total) << 32)  # sqrt(D) * 2**16, Python ints: no overflow
        if spread == 0:
            out[:, c] = int(target_mean[c])
            continue
        numerator = (n * x - total) * (int(target_std[c]) << 16)  # fits int64 for any tile under the pixel limit
        # round half away from zero, in integers: floor((2a + b) / 2b) for a >= 0, mirrored below
        shifted = np.where(numerator >= 0, (2 * numerator + spread) // (2 * spread),
                           -((-2 * numerator + spread) // (2 * spread)))
        out[:, c] = int(target_mean[c]) + shifted
    return np.clip(out, 0, 255).astype(np.uint8).reshape(rgb.shape)
