"""``edgehisto.bundle.images``: header sniffing and defensive decoding to 8-bit RGB."""

from __future__ import annotations

import struct
import time
import tracemalloc
import zlib

import cv2
import numpy as np
import pytest

from edgehisto.bundle.images import ImageHeader, decode_rgb, read_image_header
from edgehisto.errors import InvalidImage

LIMITS = {"max_pixels": 40_000_000, "min_side": 8}

# Four flat 16x16 quadrants in RGB order; flat 8x8-aligned blocks survive JPEG almost exactly.
QUADRANT_COLOURS = {
    (0, 0): (230, 20, 30),
    (0, 1): (20, 200, 40),
    (1, 0): (30, 40, 220),
    (1, 1): (250, 250, 250),
}


def _quadrant_rgb() -> np.ndarray:
    rgb = np.zeros((32, 32, 3), np.uint8)
    for (row, col), colour in QUADRANT_COLOURS.items():
        rgb[row * 16 : row * 16 + 16, col * 16 : col * 16 + 16] = colour
    return rgb


def _encode(pixels: np.ndarray, ext: str) -> bytes:
    ok, encoded = cv2.imencode(ext, pixels)
    assert ok
    return encoded.tobytes()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _palette_png(
    indices: np.ndarray, palette: list[tuple[int, int, int]], depth: int = 8, trns: bytes = b""
) -> bytes:
    """Hand-build a palette PNG (OpenCV cannot write one); ``depth`` 4 packs two pixels a byte."""
    height, width = indices.shape
    if depth == 4:
        indices = (indices[:, 0::2] << 4) | indices[:, 1::2]
    rows = b"".join(b"\x00" + row.astype(np.uint8).tobytes() for row in indices)
    chunks = [_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, 3, 0, 0, 0))]
    chunks.append(_chunk(b"PLTE", bytes(v for colour in palette for v in colour)))
    if trns:
        chunks.append(_chunk(b"tRNS", trns))
    chunks += [_chunk(b"IDAT", zlib.compress(rows)), _chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


BAD_CASES = {
    "truncated_png": "corrupt or truncated image data (PNG ends before its IEND chunk)",
    "corrupt_png": "corrupt or truncated image data (unreadable PNG header)",
    "zero_byte": "empty file (0 bytes)",
    "text_as_png": "not a PNG, JPEG, BMP, TIFF or WebP image",
    "sixteen_bit": "16-bit image; expected 8-bit RGB",
    "grayscale": "grayscale image (1 channel); expected 3-channel RGB",
    "rgba": "RGBA image with an alpha channel; expected 3-channel RGB (flatten the alpha first)",
    "one_by_one": "image is 1x1, smaller than the 8 px minimum side",
    "decompression_bomb": "image is 20000x20000 (400.0 Mpx), over the 40.0 Mpx limit",
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_tile_raises_one_specific_line(bad_tiles, case, capfd):
    path = bad_tiles[case]
    with pytest.raises(InvalidImage) as excinfo:
        decode_rgb(path.read_bytes(), **LIMITS)
    message = str(excinfo.value)
    assert BAD_CASES[case] in message
    assert "\n" not in message and str(path.parent) not in message
    # Every fixture case is caught before libpng sees it, so nothing reaches stderr.
    assert capfd.readouterr().err == ""


def test_fixture_covers_every_case(bad_tiles):
    assert set(bad_tiles) == set(BAD_CASES)


def test_decompression_bomb_is_refused_from_its_header(bad_tiles, monkeypatch):
    def no_decode(*args, **kwargs):
        raise AssertionError("cv2.imdecode must not run on a decompression bomb")

    monkeypatch.setattr(cv2, "imdecode", no_decode)
    data = bad_tiles["decompression_bomb"].read_bytes()
    assert len(data) < 2_000_000
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(InvalidImage, match="over the 40.0 Mpx limit"):
        decode_rgb(data, **LIMITS)
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 10_000_000  # the decoded image would be 1.2 GB


def test_good_tile_decodes(good_tile):
    rgb = decode_rgb(good_tile.read_bytes(), **LIMITS)
    assert rgb.shape == (50, 50, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    assert np.array_equal(rgb, cv2.cvtColor(cv2.imread(str(good_tile)), cv2.COLOR_BGR2RGB))


@pytest.mark.parametrize(
    ("ext", "tolerance"), [(".png", 0), (".bmp", 0), (".tiff", 0), (".jpg", 8)]
)
def test_round_trip_is_rgb_not_bgr(ext, tolerance):
    rgb = _quadrant_rgb()
    decoded = decode_rgb(_encode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), ext), **LIMITS)
    assert decoded.shape == (32, 32, 3) and decoded.dtype == np.uint8 and decoded.flags.c_contiguous
    for (row, col), colour in QUADRANT_COLOURS.items():
        centre = decoded[row * 16 + 8, col * 16 + 8].astype(int)
        assert np.abs(centre - colour).max() <= tolerance, (ext, colour, centre)


@pytest.mark.parametrize("depth", [8, 4])
def test_palette_png_is_accepted_as_rgb(depth):
    palette = [(230, 20, 30), (20, 200, 40), (30, 40, 220)]
    indices = np.arange(12 * 10).reshape(12, 10) % 3
    data = _palette_png(indices, palette, depth)
    assert read_image_header(data) == ImageHeader("PNG", 10, 12, 8, 3)
    rgb = decode_rgb(data, **LIMITS)
    assert np.array_equal(rgb, np.asarray(palette, np.uint8)[indices])


def test_palette_with_transparency_is_refused_after_decoding():
    # The IHDR says palette (RGB); only the decoded array reveals the alpha that tRNS adds.
    data = _palette_png(np.zeros((10, 10), np.int64), [(1, 2, 3)], trns=b"\x00")
    with pytest.raises(InvalidImage, match="RGBA image with an alpha channel"):
        decode_rgb(data, **LIMITS)


@pytest.mark.parametrize(
    ("ext", "pixels", "expected"),
    [
        (".png", np.zeros((23, 37, 3), np.uint8), ImageHeader("PNG", 37, 23, 8, 3)),
        (".png", np.zeros((23, 37, 4), np.uint8), ImageHeader("PNG", 37, 23, 8, 4)),
        (".png", np.zeros((23, 37), np.uint16), ImageHeader("PNG", 37, 23, 16, 1)),
        (".jpg", np.zeros((23, 37, 3), np.uint8), ImageHeader("JPEG", 37, 23, 8, 3)),
        (".jpg", np.zeros((23, 37), np.uint8), ImageHeader("JPEG", 37, 23, 8, 1)),
        (".bmp", np.zeros((23, 37, 3), np.uint8), ImageHeader("BMP", 37, 23, 8, 3)),
        (".bmp", np.zeros((23, 37, 4), np.uint8), ImageHeader("BMP", 37, 23, 8, 4)),
        (".tiff", np.zeros((23, 37, 3), np.uint8), ImageHeader("TIFF", 37, 23, 8, 3)),
        (".tiff", np.zeros((23, 37), np.uint16), ImageHeader("TIFF", 37, 23, 16, 1)),
        (".tiff", np.zeros((23, 37, 3), np.float32), ImageHeader("TIFF", 37, 23, 32, 3, "float")),
        (".webp", np.zeros((23, 37, 3), np.uint8), ImageHeader("WebP", 37, 23, 8, 3)),
        (".webp", np.zeros((23, 37, 4), np.uint8), ImageHeader("WebP", 37, 23, 8, 4)),
    ],
)
def test_read_image_header(ext, pixels, expected):
    assert read_image_header(_encode(pixels, ext)) == expected


@pytest.mark.parametrize(
    "data",
    [b"", b"hello", b"BMW 320d service log", b"GIF89a\x09\x00\x09\x00\x00\x00\x00;"],
)
def test_read_image_header_returns_none_for_other_data(data):
    assert read_image_header(data) is None


def test_read_image_header_returns_none_for_cut_headers():
    for ext in (".png", ".jpg", ".bmp", ".tiff", ".webp"):
        data = _encode(np.zeros((23, 37, 3), np.uint8), ext)
        assert read_image_header(data[:20]) is None


def test_truncated_jpeg_is_refused():
    data = _encode(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8), ".jpg")
    with pytest.raises(InvalidImage, match="JPEG ends before its end-of-image marker"):
        decode_rgb(data[: len(data) * 2 // 3], **LIMITS)


def test_png_with_damaged_pixel_data_is_refused_quietly(capfd):
    data = bytearray(
        _encode(np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8), ".png")
    )
    idat = data.index(b"IDAT")
    data[idat + 40 : idat + 60] = bytes(20)
    with pytest.raises(InvalidImage, match="CRC mismatch in the 'IDAT' chunk"):
        decode_rgb(bytes(data), **LIMITS)
    assert capfd.readouterr().err == ""


def test_oversized_bmp_header_is_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(cv2, "imdecode", None)  # calling it would raise TypeError
    header = b"BM" + struct.pack("<IHHI", 0, 0, 0, 54)
    header += struct.pack("<IiiHHIIiiII", 40, 30_000, -30_000, 1, 24, 0, 0, 0, 0, 0, 0)
    with pytest.raises(InvalidImage, match=r"image is 30000x30000 \(900.0 Mpx\)"):
        decode_rgb(header, **LIMITS)


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        (np.zeros((16, 16, 3), np.uint16), "16-bit image; expected 8-bit RGB"),
        (np.zeros((16, 16, 3), np.float32), "32-bit float image; expected 8-bit RGB"),
        (np.zeros((16, 16), np.uint8), "grayscale image (1 channel)"),
        (np.zeros((16, 16, 4), np.uint8), "RGBA image with an alpha channel"),
        (np.zeros((4, 16, 3), np.uint8), "image is 16x4, smaller than the 8 px minimum side"),
    ],
)
def test_tiff_layout_and_size_are_checked(pixels, message):
    with pytest.raises(InvalidImage, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode_rgb(_encode(pixels, ".tiff"), **LIMITS)


def test_unreadable_tiff_is_corrupt():
    data = _encode(np.zeros((16, 16, 3), np.uint8), ".tiff")[:8] + bytes(64)
    with pytest.raises(InvalidImage, match="corrupt or truncated image data"):
        decode_rgb(data, **LIMITS)


def test_max_pixels_is_a_parameter():
    data = _encode(np.zeros((100, 100, 3), np.uint8), ".png")
    with pytest.raises(
        InvalidImage, match=r"image is 100x100 \(10000 px\), over the 9999 px limit"
    ):
        decode_rgb(data, max_pixels=9_999, min_side=8)
    assert decode_rgb(data, max_pixels=10_000, min_side=8).shape == (100, 100, 3)
