"""Resizes that give the same bytes on every CPU and with every OpenCV release.

A bundle's golden numbers are only portable if its input tensor is: OpenCV's ``INTER_LINEAR`` and
``INTER_AREA`` use SIMD paths that differ by release and by platform (OpenCV 5.1's aarch64 wheel
resizes differently from its x86 wheel), so the two resizes a bundle can declare bit-exact are
implemented here in integer numpy, where every step is exact:

``area_exact``
    Each output pixel is the mean of the input area it covers, with fractional pixels weighted by
    their overlap. Working in units of 1/(in * out) pixel makes every overlap an integer, so the sum
    is an exact int64 and the one rounding (half up) happens at the end.
``bilinear_exact``
    Half-pixel-centre bilinear interpolation (OpenCV's geometry: ``src = (dst + 0.5) * in/out -
    0.5``, clamped at the border) with 11-bit fixed-point weights rounded from exact rationals, and
    one rounding (half up) of the 22-bit fixed-point result.

The legacy names (``bilinear``, ``area``, ``nearest``, ``bicubic``) still run OpenCV so that older
bundles reproduce what they were exported with; they are not portable bit for bit.
"""

from __future__ import annotations

import cv2
import numpy as np

EXACT_METHODS = ("area_exact", "bilinear_exact")
OPENCV_METHODS = {
    "bilinear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "nearest": cv2.INTER_NEAREST,
    "bicubic": cv2.INTER_CUBIC,
}
RESIZE_METHODS = (*EXACT_METHODS, *OPENCV_METHODS)
_WEIGHT_BITS = 11
_ONE = 1 << _WEIGHT_BITS
# Rows resized per pass by area_exact: bounds the int64 working set (rows x width x 3 x 8 bytes).
_AREA_ROWS = 256


def resize(rgb: np.ndarray, size: tuple[int, int], method: str) -> np.ndarray:
    """Resize a uint8 (H, W, C) image to ``size`` = (height, width) with a declared method."""
    height, width = size
    if method == "area_exact":
        return _area_exact(rgb, height, width)
    if method == "bilinear_exact":
        return _bilinear_exact(rgb, height, width)
    return cv2.resize(rgb, (width, height), interpolation=OPENCV_METHODS[method])


def _area_axis(values: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Area sums along one axis, in units where an input pixel is ``n_out`` wide (exact integers).

    Output pixel d covers [d * n_in, (d + 1) * n_in) in those units; the integral of the input up to
    a boundary b is ``n_out * cumsum[b // n_out - 1] + (b % n_out) * value[b // n_out]``. int32 is
    used where the largest integral provably fits, int64 otherwise.
    """
    n_in = values.shape[axis]
    largest = int(values.max(initial=0)) * n_in * n_out
    dtype = np.int32 if largest < 2**31 else np.int64
    cumulative = np.cumsum(values, axis=axis, dtype=dtype)
    bounds = np.arange(n_out + 1, dtype=np.int64) * n_in
    whole, part = bounds // n_out, bounds % n_out
    shape = [1] * values.ndim
    shape[axis] = -1
    before = np.take(cumulative, np.maximum(whole - 1, 0), axis=axis)
    before *= (whole > 0).astype(dtype).reshape(shape)  # the integral up to 0 is 0
    # At the last boundary part is 0, so the clamped index never adds a value.
    partial = part.astype(dtype).reshape(shape) * np.take(values, np.minimum(whole, n_in - 1), axis=axis)
    return np.diff(n_out * before + partial, axis=axis)


def _area_exact(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    in_h, in_w = rgb.shape[:2]
    # The x pass works on bounded row blocks: a cumulative sum of a 40-megapixel image is 0.5-1 GB.
    rows = [_area_axis(rgb[start:start + _AREA_ROWS], width, axis=1) for start in range(0, in_h, _AREA_ROWS)]
    sums = _area_axis(np.concatenate(rows), height, axis=0)
    weight = in_h * in_w  # every output pixel's overlaps add up to in_w * in_h units
    return ((2 * sums.astype(np.int64) + weight) // (2 * weight)).astype(np.uint8)


def _bilinear_axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first index, second index, fixed-point weight of the second) for each output position.

    The source coordinate (2d + 1) * n_in / (2 n_out) - 1/2 is kept as the exact rational
    ``numerator / (2 n_out)``; the weight is that fraction rounded (half up) to 11 bits.
    """
    denominator = 2 * n_out
    numerator = (2 * np.arange(n_out, dtype=np.int64) + 1) * n_in - n_out
    numerator = np.maximum(numerator, 0)  # left of the first centre: the border pixel, weight 0
    first = numerator // denominator
    weight = (2 * (numerator - first * denominator) * _ONE + denominator) // (2 * denominator)
    beyond = first >= n_in - 1  # right of the last centre: the border pixel
    first = np.minimum(first, n_in - 1)
    weight[beyond] = 0
    return first, np.minimum(first + 1, n_in - 1), weight


def _bilinear_exact(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    y0, y1, wy = _bilinear_axis(rgb.shape[0], height)
    x0, x1, wx = _bilinear_axis(rgb.shape[1], width)
    wx, wy = wx[None, :, None], wy[:, None, None]
    # Gather the needed rows and columns as uint8 first: only output-sized arrays become int64.
    top, bottom = rgb[y0], rgb[y1]
    top = (_ONE - wx) * top[:, x0].astype(np.int64) + wx * top[:, x1]
    bottom = (_ONE - wx) * bottom[:, x0].astype(np.int64) + wx * bottom[:, x1]
    total = (_ONE - wy) * top + wy * bottom
    return ((total + (1 << (2 * _WEIGHT_BITS - 1))) >> (2 * _WEIGHT_BITS)).astype(np.uint8)
