"""What a file system, a user or an attacker can hand ``classify`` and ``inspect``.

FIFOs, devices, huge and sparse files, decompression bombs in every accepted format, symbolic
link loops, unreadable directories, file names that forge output rows, non-finite model output
and hostile output directories. Command-line cases run the installed console script in a real
process (as ``tests/test_exit_codes.py`` does), with a timeout where today's failure was a hang
and an address-space limit where it was a runaway allocation.
"""

from __future__ import annotations

import os
import resource
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgehisto.bundle.images import decode_rgb, read_image_header
from edgehisto.errors import InvalidImage

LIMITS = {"max_pixels": 40_000_000, "min_side": 8}
ADDRESS_SPACE = 4 * 2**30  # far above what classify needs; far below what a runaway read takes


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


# -- 3. the bomb guard holds whatever imported OpenCV first -------------------------------------
def _deflate_zeros(total: int, block: int) -> bytes:
    """A zlib stream of ``total`` zero bytes, built from one repeated full-flush block."""
    assert total % block == 0
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = deflate.compress(bytes(block)) + deflate.flush(zlib.Z_FULL_FLUSH)
    adler = (total % 65521) << 16 | 1  # Adler-32 of zeros: A stays 1, B gains 1 per byte
    return b"\x78\xda" + body * (total // block) + deflate.flush() + struct.pack(">I", adler)


def _tiff(width: int, height: int, strip: bytes, compression: int = 8, extra: tuple = ()) -> bytes:
    """A little-endian 8-bit RGB TIFF with one strip; ``extra`` adds (tag, type, value) fields."""
    fields = sorted([(256, 4, width), (257, 4, height), (258, 3, None), (259, 3, compression),
                     (262, 3, 2), (273, 4, None), (277, 3, 3), (278, 4, height),
                     (279, 4, len(strip)), (284, 3, 1), *extra])
    ifd_size = 2 + 12 * len(fields) + 4
    bits_at, strip_at = 8 + ifd_size, 8 + ifd_size + 6
    ifd = struct.pack("<H", len(fields))
    for tag, kind, value in fields:
        count = 3 if tag == 258 else 1  # three BitsPerSample values do not fit: stored at bits_at
        value = {258: bits_at, 273: strip_at}.get(tag, value)
        slot = struct.pack("<I", value) if kind == 4 or tag == 258 else struct.pack("<HH", value, 0)
        ifd += struct.pack("<HHI", tag, kind, count) + slot
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 4 + struct.pack("<HHH", 8, 8, 8) + strip


def test_the_tiff_writer_makes_tiffs_opencv_reads():
    pixels = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    rgb = decode_rgb(_tiff(16, 16, zlib.compress(pixels.tobytes())), **LIMITS)
    np.testing.assert_array_equal(rgb, pixels)


@pytest.mark.parametrize("first", ["cv2", "edgehisto"])
def test_a_tiff_bomb_is_refused_from_its_header_whoever_imported_opencv_first(tmp_path, first):
    side = 10_000  # 100 Mpx: 300 MB of pixels (and OpenCV's strip buffer again) in a 0.3 MB file
    bomb = tmp_path / "bomb.tif"
    bomb.write_bytes(_tiff(side, side, _deflate_zeros(3 * side * side, 3 * side * 100)))
    assert bomb.stat().st_size < 1_000_000
    imports = ["import cv2", "import edgehisto.runtime"]
    script = "\n".join([
        *(imports if first == "cv2" else imports[::-1]),
        "import resource, sys",
        "from edgehisto.bundle.images import decode_rgb",
        "data = open(sys.argv[1], 'rb').read()",
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss",
        "try:",
        "    decode_rgb(data, max_pixels=40_000_000, min_side=8)",
        "except Exception as error:",
        "    print(type(error).__name__, error)",
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)",
    ])
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}  # OpenCV's own limit off
    done = subprocess.run([sys.executable, "-c", script, str(bomb)], capture_output=True, text=True,
                          timeout=120, env=env, preexec_fn=_limit_memory)
    message, grown_mb = done.stdout.strip().splitlines()
    assert message == "InvalidImage image is 10000x10000 (100.0 Mpx), over the 40.0 Mpx limit"
    assert int(grown_mb) < 50, f"{grown_mb} MB allocated before refusing"


def _webp(kind: bytes, payload: bytes) -> bytes:
    chunk = kind + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


WEBP_BOMBS = {
    # extended format: flags, reserved, then a 16384x16384 canvas as 24-bit values minus one
    "VP8X": _webp(b"VP8X", bytes(4) + (16383).to_bytes(3, "little") * 2),
    # lossless: signature 0x2f, then 14-bit width-1 and height-1
    "VP8L": _webp(b"VP8L", b"\x2f" + struct.pack("<I", 16383 | 16383 << 14) + bytes(16)),
    # lossy key frame: frame tag, start code, then 14-bit width and height
    "VP8 ": _webp(b"VP8 ", b"\x00\x00\x00\x9d\x01\x2a" + struct.pack("<HH", 16383, 16383) + bytes(16)),
}


@pytest.mark.parametrize(("name", "data", "message"), [
    ("WebP VP8X", WEBP_BOMBS["VP8X"], "image is 16384x16384 (268.4 Mpx)"),
    ("WebP VP8L", WEBP_BOMBS["VP8L"], "image is 16384x16384 (268.4 Mpx)"),
    ("WebP VP8", WEBP_BOMBS["VP8 "], "image is 16383x16383 (268.4 Mpx)"),
    ("TIFF", _tiff(20_000, 20_000, b""), "image is 20000x20000 (400.0 Mpx)"),
    ("TIFF tiles", _tiff(64, 64, b"", extra=((322, 4, 16384), (323, 4, 16384))), "TIFF tile is 16384x16384"),
])
def test_every_format_is_refused_from_its_header_before_decoding(monkeypatch, name, data, message):
    monkeypatch.setattr(cv2, "imdecode", lambda *a: pytest.fail(f"decoded a {name} bomb"))
    with pytest.raises(InvalidImage, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode_rgb(data, **LIMITS)


# -- 5. precise error messages: nothing printed by the decoders -------------------------------
DAMAGED_PNGS = {  # each made libpng print a line on stderr; case -> its error, None: decodes
    "ancillary chunk CRC": None,
    "bad filter byte": "bad adaptive filter value",
    "too little pixel data": "Not enough image data",
}


def _damaged_png(case: str) -> bytes:
    rng = np.random.default_rng(0)
    rows = [b"\x00" + rng.integers(0, 256, 32 * 3, dtype=np.uint8).tobytes() for _ in range(32)]
    if case == "bad filter byte":
        rows[5] = b"\x09" + rows[5][1:]
    if case == "too little pixel data":
        rows = rows[:10]

    def chunk(kind: bytes, payload: bytes, crc_delta: int = 0) -> bytes:
        crc = (zlib.crc32(kind + payload) + crc_delta) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    extra = chunk(b"tEXt", b"a\x00b", 1) if case == "ancillary chunk CRC" else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 32, 32, 8, 2, 0, 0, 0)) + extra
            + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


@pytest.mark.parametrize("case", DAMAGED_PNGS)
def test_libpng_never_prints_and_its_reason_reaches_the_record(case, capfd):
    expected = DAMAGED_PNGS[case]
    if expected is None:
        assert decode_rgb(_damaged_png(case), **LIMITS).shape == (32, 32, 3)
    else:
        with pytest.raises(InvalidImage, match=f"corrupt or truncated image data .PNG decoder: libpng error: {expected}"):
            decode_rgb(_damaged_png(case), **LIMITS)
    assert capfd.readouterr().err == ""


def test_a_jpeg_with_corrupt_scan_data_is_refused_quietly(capfd):
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = bytearray(cv2.imencode(".jpg", pixels)[1].tobytes())
    data[len(data) // 2 : len(data) // 2 + 30] = bytes(b ^ 0x5A for b in data[len(data) // 2 : len(data) // 2 + 30])
    with pytest.raises(InvalidImage, match="corrupt image data .JPEG decoder: Corrupt JPEG data"):
        decode_rgb(bytes(data), **LIMITS)
    assert capfd.readouterr().err == ""


# -- 10. a seeded fuzz of the header readers ----------------------------------------------------
def _samples() -> list[bytes]:
    pixels = np.random.default_rng(0).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    encoded = [cv2.imencode(ext, pixels)[1].tobytes() for ext in (".png", ".jpg", ".bmp", ".tiff", ".webp")]
    return [*encoded, cv2.imencode(".webp", pixels, [cv2.IMWRITE_WEBP_QUALITY, 80])[1].tobytes(),
            *WEBP_BOMBS.values(), _tiff(12, 12, zlib.compress(pixels.tobytes()))]


@st.composite
def _mutated_images(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(_samples())))
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "set", "cut", "insert"]))
        if action == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "set":
            data[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, draw(st.integers(0, 255))]))
        elif action == "cut":
            del data[at:]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        if not data:
            break
    return bytes(data)


_MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00(\x00\x00\x00",
          b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+", b"RIFF\x00\x00\x00\x00WEBPVP8X", b"RIFF\x00\x00\x00\x00WEBPVP8L"]


@settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_mutated_images(), st.builds(bytes.__add__, st.sampled_from(_MAGIC), st.binary(max_size=64))))
def test_header_readers_and_decoding_raise_nothing_but_invalid_image(data):
    read_image_header(data)
    try:
        rgb = decode_rgb(data, max_pixels=1_000_000, min_side=1)
    except InvalidImage as error:
        assert "\n" not in str(error)
    else:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
