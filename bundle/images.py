"""Defensive image decoding: read and check the header before OpenCV allocates any pixels.

Every bad input ends as one ``InvalidImage`` with a one-line message saying what was found and
what is expected; callers prefix the file path.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from edgehisto.errors import InvalidImage

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type -> channels once decoded; a palette (3) expands to RGB.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}
# SOF0..SOF15 carry the frame header, except C4 (DHT), C8 (JPG) and CC (DAC) in that range.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RST0-7, SOI: no length field
_JPEG_SOS = 0xDA
_BMP_DIB_SIZES = frozenset(struct.pack("<I", n) for n in (12, 40, 52, 56, 64, 108, 124))
_BI_BITFIELDS = 3
_ACCEPTED = "PNG, JPEG, BMP, TIFF or WebP"


@dataclass(frozen=True)
class ImageHeader:
    """Geometry read from a file header; ``bit_depth`` is bits per decoded sample."""

    format: str  # "PNG", "JPEG" or "BMP"
    width: int
    height: int
    bit_depth: int
    channels: int


def _sniff(data: bytes) -> str | None:
    """Name the container format from its magic bytes, or None if it is not one we accept."""
    if data.startswith(_PNG_SIGNATURE):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    # "BM" alone is too weak (a text file may start with it): also require a known DIB size.
    if data.startswith(b"BM") and data[14:18] in _BMP_DIB_SIZES:
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return None


def _png_header(data: bytes) -> ImageHeader | None:
    length, kind = struct.unpack_from(">I4s", data, 8)
    width, height, depth, colour = struct.unpack_from(">IIBB", data, 16)
    if kind != b"IHDR" or length != 13 or colour not in _PNG_CHANNELS:
        return None
    # Palette entries are 8-bit RGB whatever the index depth, so a palette decodes to 8-bit RGB.
    return ImageHeader("PNG", width, height, 8 if colour == 3 else depth, _PNG_CHANNELS[colour])


def _jpeg_find(data: bytes, wanted: frozenset[int]) -> tuple[int, int] | None:
    """Walk the JPEG markers to the first one in ``wanted``; return it and its segment offset."""
    pos = 2
    while pos < len(data) and data[pos] == 0xFF:
        while data[pos] == 0xFF:  # markers may be padded with any number of 0xFF fill bytes
            pos += 1
        marker, pos = data[pos], pos + 1
        if marker in wanted:
            return marker, pos
        if marker == 0xD9:  # EOI
            return None
        if marker not in _JPEG_NO_LENGTH:
            pos += struct.unpack_from(">H", data, pos)[0]
    return None


def _jpeg_header(data: bytes) -> ImageHeader | None:
    found = _jpeg_find(data, _JPEG_SOF | {_JPEG_SOS})
    if found is None or found[0] == _JPEG_SOS:  # scan data before any frame header
        return None
    depth, height, width, components = struct.unpack_from(">BHHB", data, found[1] + 2)
    return ImageHeader("JPEG", width, height, depth, components)


def _bmp_header(data: bytes) -> ImageHeader | None:
    if struct.unpack_from("<I", data, 14)[0] == 12:  # OS/2 core header: 16-bit sizes, no alpha
        width, height, _planes, bpp = struct.unpack_from("<HHHH", data, 18)
        compression = 0
    else:
        width, height, _planes, bpp, compression = struct.unpack_from("<iiHHI", data, 18)
    # OpenCV expands every BMP depth to 8 bits per channel and keeps a 4th channel only for
    # 32-bit BITFIELDS bitmaps (plain 32-bit BI_RGB has an unused padding byte).
    channels = 4 if bpp == 32 and compression == _BI_BITFIELDS else 3
    return ImageHeader("BMP", abs(width), abs(height), 8, channels)  # height < 0: top-down rows


_HEADER_PARSERS = {"PNG": _png_header, "JPEG": _jpeg_header, "BMP": _bmp_header}


def read_image_header(data: bytes) -> ImageHeader | None:
    """Read width, height, bit depth and channels of a PNG, JPEG or BMP without decoding it.

    Returns:
        The header, or None for other formats and for headers that cannot be parsed.
    """
    parser = _HEADER_PARSERS.get(_sniff(data))
    try:
        return parser(data) if parser else None
    except (struct.error, IndexError):  # the header is cut short
        return None


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
    pos = len(_PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > len(data):
            break
        # Critical chunks only, as libpng does; catching them here also keeps libpng from
        # printing its own error line to stderr.
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
            scan = _jpeg_find(data, frozenset({_JPEG_SOS}))
        except (struct.error, IndexError):
            scan = None
        if scan is None or data.find(b"\xff\xd9", scan[1]) < 0:
            return "JPEG ends before its end-of-image marker"
    return None


def _imdecode(data: bytes, fmt: str) -> np.ndarray:
    """Decode with OpenCV, its own logging silenced; raise ``InvalidImage`` on failure."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        if "MAX_IMAGE_PIXELS" in str(exc):
            raise InvalidImage(
                "image is over OpenCV's decoder pixel limit (OPENCV_IO_MAX_IMAGE_PIXELS)"
            ) from None
        pixels = None
    finally:
        cv2.utils.logging.setLogLevel(previous)
    if pixels is None:
        raise InvalidImage(f"corrupt or truncated image data (OpenCV cannot decode this {fmt})")
    return pixels


def decode_rgb(data: bytes, *, max_pixels: int, min_side: int) -> np.ndarray:
    """Decode image bytes into a C-contiguous uint8 RGB array, refusing anything else.

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
    fmt = _sniff(data)
    if fmt is None:
        raise InvalidImage(f"not a {_ACCEPTED} image (starts with {data[:8]!r})")
    header = read_image_header(data)
    if fmt in ("PNG", "JPEG", "BMP"):
        if header is None:
            raise InvalidImage(f"corrupt or truncated image data (unreadable {fmt} header)")
        _check_size(header.width, header.height, max_pixels, min_side)
        _check_layout(f"{header.bit_depth}-bit", header.channels, fmt)
        damage = _damage(data, fmt)
        if damage:
            raise InvalidImage(f"corrupt or truncated image data ({damage})")
    pixels = _imdecode(data, fmt)
    # Headers can lie and TIFF/WebP have none we read: check what was actually decoded.
    height, width = pixels.shape[:2]
    if header is not None and (width, height) != (header.width, header.height):
        raise InvalidImage(
            f"corrupt image data (header says {header.width}x{header.height}, "
            f"pixels are {width}x{height})"
        )
    _check_size(width, height, max_pixels, min_side)
    kind = {"u": "", "i": " signed", "f": " float"}.get(pixels.dtype.kind, " " + pixels.dtype.name)
    depth = f"{pixels.dtype.itemsize * 8}-bit{kind}"
    _check_layout(depth, pixels.shape[2] if pixels.ndim == 3 else 1, fmt)
    return np.ascontiguousarray(cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB))
