"""Defensive image decoding: read and check the header before OpenCV allocates any pixels.

Every bad input ends as one ``InvalidImage`` with a one-line message saying what was found and
what is expected; callers prefix the file path.
"""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np

from edgehisto.bundle.image_headers import (
    ACCEPTED,
    JPEG_SOS,
    PNG_SIGNATURE,
    ImageHeader,
    jpeg_find,
    read_image_header,
    sniff_format,
)
from edgehisto.bundle.native_stderr import NativeStderr, native_stderr
from edgehisto.errors import InvalidImage

__all__ = ["ImageHeader", "decode_rgb", "read_image_header"]

_SAMPLE_KINDS = {"unsigned": "", "signed": " signed", "float": " float"}
# libjpeg goes on decoding damaged entropy-coded data and only prints these warnings; the
# pixels it returns are then partly garbage, so the tile is refused.
_JPEG_DAMAGE = ("Corrupt JPEG data", "Premature end of JPEG file")
_DECODER_MESSAGE_LIMIT = 160  # characters of a decoder's own message kept in the error
_DECODER_OUTPUT_LIMIT = 64 * 1024  # bytes of the decoders' stderr read back per decode


def _pixel_count(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} Mpx" if pixels >= 100_000 else f"{pixels} px"


def _check_size(width: int, height: int, max_pixels: int, min_side: int) -> None:
    if width * height > max_pixels:
        raise InvalidImage(
            f"image is {width}x{height} ({_pixel_count(width * height)}), "
            f"over the {_pixel_count(max_pixels)} limit"
        )
    if min(width, height) < min_side:
        raise InvalidImage(
            f"image is {width}x{height}, smaller than the {min_side} px minimum side"
        )


def _check_layout(depth: str, channels: int, fmt: str) -> None:
    """Refuse anything but 8-bit, 3-channel colour; ``depth`` is a label such as "16-bit"."""
    if depth != "8-bit":
        raise InvalidImage(f"{depth} image; expected 8-bit RGB")
    if channels == 1:
        raise InvalidImage("grayscale image (1 channel); expected 3-channel RGB")
    if channels == 2:
        raise InvalidImage("grayscale image with an alpha channel; expected 3-channel RGB")
    if channels == 4 and fmt == "JPEG":
        raise InvalidImage("CMYK JPEG (4 components); expected 3-channel RGB")
    if channels == 4:
        raise InvalidImage(
            "RGBA image with an alpha channel; expected 3-channel RGB (flatten the alpha first)"
        )
    if channels != 3:
        raise InvalidImage(f"{channels}-channel image; expected 3-channel RGB")


def _png_damage(data: bytes) -> str | None:
    """Walk the PNG chunks up to IEND; describe the first truncation or CRC error, if any."""
    view = memoryview(data)  # slices of a view do not copy the (possibly large) IDAT data
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > len(data):
            break
        # Critical chunks only, as libpng does (it skips a damaged ancillary chunk).
        crc = struct.unpack_from(">I", data, end - 4)[0]
        if kind[:1].isupper() and zlib.crc32(view[pos + 4 : end - 4]) != crc:
            return f"CRC mismatch in the {kind.decode('latin-1')!r} chunk"  # repr: one line
        if kind == b"IEND":
            return None
        pos = end
    return "PNG ends before its IEND chunk"


def _damage(data: bytes, fmt: str) -> str | None:
    """Catch truncation that OpenCV may half-decode (older builds return the rows read so far)."""
    if fmt == "PNG":
        return _png_damage(data)
    if fmt == "JPEG":
        # FF D9 cannot occur in entropy-coded data: a complete file has one after the first scan.
        try:
            scan = jpeg_find(data, frozenset({JPEG_SOS}))
        except (struct.error, IndexError):
            scan = None
        if scan is None or data.find(b"\xff\xd9", scan[1]) < 0:
            return "JPEG ends before its end-of-image marker"
    return None


def _decoder_says(lines: list[str]) -> str:
    """The decoders' first error (else first warning), cut to one short line."""
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [""])[0][:_DECODER_MESSAGE_LIMIT]


def _imdecode(data: bytes, fmt: str) -> np.ndarray:
    """Decode with OpenCV, its log and the decoders' stderr silenced; raise ``InvalidImage``.

    libpng and libjpeg report problems by printing to fd 2, below OpenCV's own logging, so
    silencing OpenCV's log level does not reach them: their lines are captured for the error.
    """
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    printed = NativeStderr()
    try:
        with native_stderr(max_bytes=_DECODER_OUTPUT_LIMIT) as printed:
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        if "MAX_IMAGE_PIXELS" in str(exc):
            raise InvalidImage(
                "image is over OpenCV's decoder pixel limit (OPENCV_IO_MAX_IMAGE_PIXELS)"
            ) from None
        pixels = None
    finally:
        cv2.utils.logging.setLogLevel(previous)
    said = _decoder_says([line.strip() for line in printed.text.splitlines() if line.strip()])
    if pixels is None:
        reason = f"{fmt} decoder: {said}" if said else f"OpenCV cannot decode this {fmt}"
        raise InvalidImage(f"corrupt or truncated image data ({reason})")
    if fmt == "JPEG" and said.startswith(_JPEG_DAMAGE):
        raise InvalidImage(f"corrupt image data (JPEG decoder: {said})")
    return pixels


def _check_header(data: bytes, fmt: str, max_pixels: int, min_side: int) -> ImageHeader:
    """Refuse from the header alone what must never reach the decoder; return the header."""
    header = read_image_header(data)
    if header is None:
        raise InvalidImage(f"corrupt or truncated image data (unreadable {fmt} header)")
    _check_size(header.width, header.height, max_pixels, min_side)
    if header.tile is not None and header.tile[0] * header.tile[1] > max_pixels:
        width, height = header.tile
        raise InvalidImage(f"TIFF tile is {width}x{height}, over the {_pixel_count(max_pixels)} limit")
    depth = f"{header.bit_depth}-bit{_SAMPLE_KINDS.get(header.sample_format, ' ' + header.sample_format)}"
    _check_layout(depth, header.channels, fmt)
    damage = _damage(data, fmt)
    if damage:
        raise InvalidImage(f"corrupt or truncated image data ({damage})")
    return header


def _describe_start(data: bytes) -> str:
    """What the file starts with, for a person: text as text, anything else as hex bytes."""
    head = data[:24]
    text = head.decode("ascii", errors="replace")
    if all(c.isprintable() or c in "\t\r\n" for c in text):
        shown = " ".join(text.split())  # newlines and tabs would break the one-line error
        return f"it looks like text: \"{shown}{'...' if len(data) > len(head) else ''}\""
    return f"it starts with the bytes {head[:8].hex(' ')}"


def decode_rgb(data: bytes, *, max_pixels: int, min_side: int) -> np.ndarray:
    """Decode image bytes into a C-contiguous uint8 RGB array, refusing anything else.

    Width, height, bit depth and channels are checked on the header of every accepted format
    before OpenCV allocates anything, so the pixel limit holds whatever OpenCV's own limit
    (``OPENCV_IO_MAX_IMAGE_PIXELS``) is, and whoever imported OpenCV first.

    Args:
        data: The whole file content.
        max_pixels: Largest width * height accepted, checked on the header before decoding.
        min_side: Smallest width or height accepted.

    Returns:
        An (H, W, 3) uint8 array in RGB order.

    Raises:
        InvalidImage: With a one-line reason for empty, unknown, oversized, undersized,
            non-8-bit, grayscale, alpha, corrupt or truncated input.
    """
    if not data:
        raise InvalidImage("empty file (0 bytes)")
    fmt = sniff_format(data)
    if fmt is None:
        raise InvalidImage(f"not a {ACCEPTED} image ({_describe_start(data)})")
    header = _check_header(data, fmt, max_pixels, min_side)
    pixels = _imdecode(data, fmt)
    # Headers can lie: check what was actually decoded too.
    height, width = pixels.shape[:2]
    if (width, height) != (header.width, header.height):
        raise InvalidImage(
            f"corrupt image data (header says {header.width}x{header.height}, "
            f"pixels are {width}x{height})"
        )
    kind = {"u": "", "i": " signed", "f": " float"}.get(pixels.dtype.kind, " " + pixels.dtype.name)
    depth = f"{pixels.dtype.itemsize * 8}-bit{kind}"
    _check_layout(depth, pixels.shape[2] if pixels.ndim == 3 else 1, fmt)
    return np.ascontiguousarray(cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB))
