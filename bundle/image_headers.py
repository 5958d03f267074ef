"""Image geometry read from file headers, for every format the runtime accepts, without decoding.

The decompression-bomb guard in ``bundle.images`` rests on these readers: OpenCV is only asked to
decode a file whose header has already been checked, so the guard holds however OpenCV was
configured or imported.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ACCEPTED = "PNG, JPEG, BMP, TIFF or WebP"
# PNG colour type -> channels once decoded; a palette (3) expands to RGB.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}
# SOF0..SOF15 carry the frame header, except C4 (DHT), C8 (JPG) and CC (DAC) in that range.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RST0-7, SOI: no length field
JPEG_SOS = 0xDA
_BMP_DIB_SIZES = frozenset(struct.pack("<I", n) for n in (12, 40, 52, 56, 64, 108, 124))
_BI_BITFIELDS = 3
# TIFF tags read from the first directory (the page OpenCV decodes) and the field types that
# can hold them (SHORT or LONG; LONG8 in BigTIFF).
_TIFF_WIDTH, _TIFF_HEIGHT, _TIFF_BITS, _TIFF_PHOTOMETRIC, _TIFF_SAMPLES = 256, 257, 258, 262, 277
_TIFF_TILE_WIDTH, _TIFF_TILE_HEIGHT, _TIFF_SAMPLE_FORMAT = 322, 323, 339
_TIFF_SAMPLE_FORMATS = {1: "unsigned", 2: "signed", 3: "float"}
_TIFF_INTEGER_TYPES = {3: "H", 4: "I", 16: "Q"}
_TIFF_PALETTE = 3
_TIFF_MAX_ENTRIES = 4096  # real first directories hold a few dozen; more is garbage or an attack
_WEBP_ALPHA_FLAG = 0x10


@dataclass(frozen=True)
class ImageHeader:
    """Geometry read from a file header; ``bit_depth`` is bits per decoded sample.

    ``sample_format`` is "unsigned", "signed" or "float" (only TIFF declares anything but
    unsigned). ``tile`` is the (width, height) of one TIFF tile: the decoder allocates a buffer
    that size however small the image, so it is checked against the same pixel limit.
    """

    format: str  # "PNG", "JPEG", "BMP", "TIFF" or "WebP"
    width: int
    height: int
    bit_depth: int
    channels: int
    sample_format: str = "unsigned"
    tile: tuple[int, int] | None = None


def sniff_format(data: bytes) -> str | None:
    """Name the container format from its magic bytes, or None if it is not one we accept."""
    if data.startswith(PNG_SIGNATURE):
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


def jpeg_find(data: bytes, wanted: frozenset[int]) -> tuple[int, int] | None:
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
    found = jpeg_find(data, _JPEG_SOF | {JPEG_SOS})
    if found is None or found[0] == JPEG_SOS:  # scan data before any frame header
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


def _tiff_fields(data: bytes) -> dict[int, int] | None:
    """The first value of each integer field of a (Big)TIFF's first directory, or None."""
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    if big:
        count_format, entry_size, value_size = "Q", 20, 8
        offset = struct.unpack_from(order + "Q", data, 8)[0]
    else:
        count_format, entry_size, value_size = "H", 12, 4
        offset = struct.unpack_from(order + "I", data, 4)[0]
    entries = struct.unpack_from(order + count_format, data, offset)[0]
    if entries > _TIFF_MAX_ENTRIES:
        return None
    fields: dict[int, int] = {}
    start = offset + struct.calcsize(count_format)
    for entry in range(start, start + entries * entry_size, entry_size):
        tag, kind = struct.unpack_from(order + "HH", data, entry)
        count = struct.unpack_from(order + ("Q" if big else "I"), data, entry + 4)[0]
        if kind not in _TIFF_INTEGER_TYPES or count == 0:
            continue
        if tag in fields:  # libtiff keeps one of the two; guessing which would be unsafe
            return None
        value_format = order + _TIFF_INTEGER_TYPES[kind]
        value_at = entry + entry_size - value_size
        if count * struct.calcsize(value_format) > value_size:  # values stored elsewhere
            value_at = struct.unpack_from(order + ("Q" if big else "I"), data, value_at)[0]
        fields[tag] = struct.unpack_from(value_format, data, value_at)[0]
    return fields


def _tiff_header(data: bytes) -> ImageHeader | None:
    fields = _tiff_fields(data)
    if fields is None or _TIFF_WIDTH not in fields or _TIFF_HEIGHT not in fields:
        return None
    samples = fields.get(_TIFF_SAMPLES, 1)  # the TIFF defaults: one 1-bit sample
    depth = fields.get(_TIFF_BITS, 1)
    if fields.get(_TIFF_PHOTOMETRIC) == _TIFF_PALETTE and samples == 1:
        samples, depth = 3, 8  # like PNG: a palette decodes to 8-bit RGB
    tile = None
    if _TIFF_TILE_WIDTH in fields or _TIFF_TILE_HEIGHT in fields:
        tile = (fields.get(_TIFF_TILE_WIDTH, 0), fields.get(_TIFF_TILE_HEIGHT, 0))
    sample_format = _TIFF_SAMPLE_FORMATS.get(fields.get(_TIFF_SAMPLE_FORMAT, 1), "unknown")
    return ImageHeader("TIFF", fields[_TIFF_WIDTH], fields[_TIFF_HEIGHT], depth, samples,
                       sample_format, tile)


def _webp_header(data: bytes) -> ImageHeader | None:
    kind = data[12:16]
    if kind == b"VP8 ":  # lossy: a key frame's start code, then 14-bit sizes
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        width, height = (v & 0x3FFF for v in struct.unpack_from("<HH", data, 26))
        return ImageHeader("WebP", width, height, 8, 3)
    if kind == b"VP8L":  # lossless: signature byte, then 14-bit sizes minus one and alpha bit
        if data[20] != 0x2F:
            return None
        bits = struct.unpack_from("<I", data, 21)[0]
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        return ImageHeader("WebP", width, height, 8, 4 if bits >> 28 & 1 else 3)
    if kind == b"VP8X":  # extended: flags, then the canvas size as 24-bit values minus one
        if len(data) < 30:
            return None
        flags = data[20]
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return ImageHeader("WebP", width, height, 8, 4 if flags & _WEBP_ALPHA_FLAG else 3)
    return None


_HEADER_PARSERS = {"PNG": _png_header, "JPEG": _jpeg_header, "BMP": _bmp_header,
                   "TIFF": _tiff_header, "WebP": _webp_header}


def read_image_header(data: bytes) -> ImageHeader | None:
    """Read width, height, bit depth and channels of a PNG, JPEG, BMP, TIFF or WebP file.

    Nothing is decoded: only the header (for TIFF, the first directory) is parsed.

    Returns:
        The header, or None for other formats and for headers that cannot be parsed.
    """
    parser = _HEADER_PARSERS.get(sniff_format(data))
    try:
        return parser(data) if parser else None
    # Cut short, or an offset outside the file (BigTIFF offsets go up to 2**64: OverflowError).
    except (struct.error, IndexError, OverflowError):
        return None
