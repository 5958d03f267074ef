"""What a file system, a user or an attacker can hand ``classify`` and ``inspect``.

FIFOs, devices, huge and sparse files, decompression bombs in every accepted format, symbolic
link loops, unreadable directories, file names that forge output rows, non-finite model output
and hostile output directories. Command-line cases run the installed console script in a real
process (as ``tests/test_exit_codes.py`` does), with a timeout where today's failure was a hang
and an address-space limit where it was a runaway allocation.
"""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgehisto.bundle.images import decode_rgb, read_image_header
from edgehisto.errors import InvalidImage
from edgehisto.runtime.classifier import Classifier
from edgehisto.runtime.cli_classify import one_line, render
from edgehisto.runtime.inputs import TileInput, expand_inputs, read_tile_file
from edgehisto.runtime.outputs import gradcam_file_stem, write_gradcam_files
from edgehisto.runtime.registry import DEFAULT_MODEL, embedded_bundles

CONSOLE_SCRIPT = Path(sys.executable).with_name("edgehisto")
LIMITS = {"max_pixels": 40_000_000, "min_side": 8}
ADDRESS_SPACE = 4 * 2**30  # far above what classify needs; far below what a runaway read takes


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def edgehisto(*args: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the installed console script; a hang fails the test instead of stalling the suite."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([str(CONSOLE_SCRIPT), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env, preexec_fn=_limit_memory)


def classify_json(*args: str | Path, cwd: Path) -> tuple[subprocess.CompletedProcess, list[dict]]:
    done = edgehisto("classify", *args, "--format", "json", cwd=cwd)
    assert "Traceback" not in done.stderr, done.stderr
    return done, json.loads(done.stdout)


def _tile(path: Path, seed: int = 0, size: int = 50) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), pixels)
    return path


@pytest.fixture
def four_tiles(tmp_path: Path) -> Path:
    folder = tmp_path / "tiles"
    for i in range(4):
        _tile(folder / "sub" / f"t{i}.png", seed=i)
    return folder


@pytest.fixture(scope="module")
def default_classifier() -> Classifier:
    return Classifier(embedded_bundles()[DEFAULT_MODEL])


# -- 1. only regular files are read ------------------------------------------------------------
def test_a_fifo_named_found_in_a_directory_or_by_a_glob_never_blocks(tmp_path, good_tile):
    os.mkfifo(tmp_path / "named.png")
    (tmp_path / "walked").mkdir()
    os.mkfifo(tmp_path / "walked" / "inside.png")
    done, records = classify_json(good_tile, "named.png", "walked", "walked/*.png", cwd=tmp_path)
    assert done.returncode == 1
    assert [r["path"] for r in records] == [str(good_tile), "named.png", "walked/inside.png"]
    assert "label" in records[0]
    for record in records[1:]:
        assert record["error"] == "a FIFO (named pipe), not a regular file; only regular files are read"


def test_devices_get_a_one_line_error_and_are_never_read(tmp_path, good_tile):
    done, records = classify_json("/dev/zero", "/dev/null", good_tile, cwd=tmp_path)
    assert done.returncode == 1
    assert records[0] == {"path": "/dev/zero",
                          "error": "a character device, not a regular file; only regular files are read"}
    assert records[1]["error"].startswith("a character device")
    assert "label" in records[2]


def test_inspect_refuses_a_data_directory_holding_a_fifo_instead_of_blocking(tmp_path):
    root = tmp_path / "idc"
    _tile(root / "10001" / "0" / "10001_idx5_x1_y1_class0.png")
    os.mkfifo(root / "10001" / "0" / "10001_idx5_x51_y1_class0.png")
    done = edgehisto("inspect", root, cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: {root} holds 1 entries that are not regular files and would not be read "
        "(10001/0/10001_idx5_x51_y1_class0.png (FIFO)); move them out of the data directory"]


# -- 2. the file size is capped before reading -------------------------------------------------
def test_a_sparse_gigabyte_file_is_refused_from_its_size_without_reading_it(tmp_path, good_tile):
    with open(tmp_path / "sparse.png", "wb") as handle:
        handle.truncate(2**30)
    done, records = classify_json("sparse.png", good_tile, cwd=tmp_path)
    assert done.returncode == 1
    assert records[0]["error"] == "file is 1024.0 MB, over the 64.0 MB tile file limit"
    assert "label" in records[1]


def test_max_file_mb_sets_the_limit(tmp_path, good_tile):
    done, records = classify_json(good_tile, "--max-file-mb", "0.001", cwd=tmp_path)
    assert done.returncode == 1
    assert records[0]["error"] == f"file is {good_tile.stat().st_size} bytes, over the 1048 bytes tile file limit"


def test_read_tile_file_checks_size_before_reading(tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    big.write_bytes(bytes(2048))
    monkeypatch.setattr(os, "open", lambda *a, **k: pytest.fail("opened an oversized file"))
    with pytest.raises(InvalidImage, match="file is 2048 bytes, over the 1024 bytes tile file limit"):
        read_tile_file(big, max_bytes=1024)


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


# -- 4. walks and globs never go round a symbolic link loop -------------------------------------
def test_directory_walks_and_globs_enter_each_directory_once(tmp_path, four_tiles):
    (four_tiles / "sub" / "up").symlink_to("..")
    (four_tiles / "sub" / "self").symlink_to(".")  # two loops: a naive glob grows as 2^depth
    for argument in ("tiles", "tiles/**/*.png", "tiles/*/*.png"):
        done, records = classify_json(argument, cwd=tmp_path)
        assert done.returncode == 0, (argument, done.stderr)
        assert [r["path"] for r in records] == [f"tiles/sub/t{i}.png" for i in range(4)], argument


# -- 5. precise error messages: links and directories ----------------------------------------
def test_links_that_lead_nowhere_are_named_for_what_they_are(tmp_path):
    (tmp_path / "loop.png").symlink_to("loop.png")
    (tmp_path / "dangling.png").symlink_to("missing.png")
    assert expand_inputs([str(tmp_path / "loop.png"), str(tmp_path / "dangling.png"), "nowhere.png"]) == [
        TileInput(str(tmp_path / "loop.png"), "symbolic link loop"),
        TileInput(str(tmp_path / "dangling.png"), "dangling symbolic link (its target does not exist)"),
        TileInput("nowhere.png", "no such file or directory"),
    ]


def test_an_unreadable_directory_is_not_an_empty_one(tmp_path, four_tiles, monkeypatch):
    (four_tiles / "locked").mkdir()
    real_scandir = os.scandir

    def scandir(path):  # chmod 000 does not stop root, so refuse the way the kernel would
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    items = expand_inputs([str(four_tiles / "locked"), str(four_tiles)])
    assert items[0] == TileInput(str(four_tiles / "locked"), "cannot list directory: permission denied")
    assert [item.error for item in items[1:]] == ["cannot list directory: permission denied"] + [None] * 4


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
        expected_message = f"corrupt or truncated image data .PNG decoder: libpng error: {expected}"
        with pytest.raises(InvalidImage, match=expected_message):
            decode_rgb(_damaged_png(case), **LIMITS)
    assert capfd.readouterr().err == ""


def test_a_jpeg_with_corrupt_scan_data_is_refused_quietly(capfd):
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = bytearray(cv2.imencode(".jpg", pixels)[1].tobytes())
    data[len(data) // 2 : len(data) // 2 + 30] = bytes(b ^ 0x5A for b in data[len(data) // 2 : len(data) // 2 + 30])
    with pytest.raises(InvalidImage, match="corrupt image data .JPEG decoder: Corrupt JPEG data"):
        decode_rgb(bytes(data), **LIMITS)
    assert capfd.readouterr().err == ""


# -- 6. records in argument order ---------------------------------------------------------------
def test_records_follow_the_arguments_unmatched_ones_included(tmp_path, four_tiles, good_tile):
    done, records = classify_json("missing.png", good_tile, "tiles/*/t[23].png", "nothing/*.png",
                                  "tiles", cwd=tmp_path)
    assert done.returncode == 1
    assert [(r["path"], "error" in r) for r in records] == [
        ("missing.png", True), (str(good_tile), False), ("tiles/sub/t2.png", False),
        ("tiles/sub/t3.png", False), ("nothing/*.png", True), ("tiles/sub/t0.png", False),
        ("tiles/sub/t1.png", False)]


# -- 7. output that is safe to parse ------------------------------------------------------------
HOSTILE_NAMES = ["new\nline.png", "tab\tand,comma.png", "ansi\x1b[2J.png", "bidi\u202egnp.exe.png",
                 "back\\slash.png", "quote\".png"]


def test_file_names_cannot_forge_rows_in_table_or_csv(tmp_path):
    for i, name in enumerate(HOSTILE_NAMES):
        _tile(tmp_path / "odd" / name, seed=i)
    table = edgehisto("classify", "odd", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert len(table.stdout.splitlines()) == 1 + len(HOSTILE_NAMES)
    assert "odd/new\\nline.png " in table.stdout and "\x1b" not in table.stdout and "\u202e" not in table.stdout
    text = edgehisto("classify", "odd", "--format", "csv", cwd=tmp_path).stdout
    assert len(text.splitlines()) == 1 + len(HOSTILE_NAMES)  # one physical line per row
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(row["path"] for row in rows) == sorted(one_line(f"odd/{name}") for name in HOSTILE_NAMES)
    assert all(row["label"] for row in rows)
    _, records = classify_json("odd", cwd=tmp_path)
    assert sorted(r["path"] for r in records) == sorted(f"odd/{name}" for name in HOSTILE_NAMES)


def test_one_line_escapes_are_unambiguous():
    assert one_line("a\nb\tc\\n\x1b\u202e\u2028\udcff") == "a\\nb\\tc\\\\n\\x1b\\u202e\\u2028\\udcff"
    assert one_line("plain é 你好.png") == "plain é 你好.png"


# -- 8. NaN or inf is an error, never a label ---------------------------------------------------
def test_non_finite_model_input_gives_an_error_not_a_label(default_classifier):
    height, width = default_classifier.spec.input_size
    x = np.zeros((2, height, width, 3), np.float32)
    x[1, 0, 0, 0] = np.nan
    first, second = default_classifier.classify_tensor(x, gradcam=True)
    assert first.ok and first.stages
    assert not second.ok and not second.stages
    assert "NaN or inf" in second.error
    json.loads(render([r.to_record() for r in (first, second)], "json"),
               parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


def test_non_finite_probabilities_from_files_give_an_error(default_classifier, good_tile, monkeypatch):
    real_head = Classifier.head

    def nan_head(self, activations, stage):
        logits, probabilities = real_head(self, activations, stage)
        return logits, np.full_like(probabilities, np.inf)

    monkeypatch.setattr(Classifier, "head", nan_head)
    [result] = default_classifier.classify_paths([good_tile])
    stage = default_classifier.bundle.entry_stage
    assert result.to_record() == {"path": str(good_tile),
                                  "error": f"NaN or inf in the {stage} stage's probabilities; no label given"}


# -- 9. Grad-CAM outputs ----------------------------------------------------------------------
def test_an_unwritable_gradcam_directory_fails_each_tile_but_keeps_the_batch(tmp_path, four_tiles):
    for target in ("/proc/x", "/proc"):
        done, records = classify_json("tiles", "--gradcam", target, cwd=tmp_path)
        assert done.returncode == 1
        assert len(records) == 4 and all(r["label"] and "Grad-CAM files not written" in r["error"] for r in records)


def test_gradcam_files_are_listed_named_by_path_and_replaced_on_rerun(tmp_path, four_tiles):
    (four_tiles / "other").mkdir()
    (four_tiles / "other" / "t0.png").write_bytes((four_tiles / "sub" / "t0.png").read_bytes())
    _, records = classify_json("tiles", "--gradcam", "cams", cwd=tmp_path)
    files = [f for r in records for f in r["gradcam_files"]]
    assert len(files) == len(set(files)) == 2 * 5  # same stem, two paths: two names
    assert all(Path(tmp_path, f).is_file() for f in files)
    assert files[0].startswith(f"cams/{gradcam_file_stem('tiles/other/t0.png')}.")
    _, again = classify_json("tiles", "--gradcam", "cams", cwd=tmp_path)
    assert [r["gradcam_files"] for r in again] == [r["gradcam_files"] for r in records]
    assert sorted(p.name for p in (tmp_path / "cams").iterdir()) == sorted(Path(f).name for f in files)


def test_a_planted_link_or_directory_at_an_output_name_is_refused(tmp_path, four_tiles):
    _, records = classify_json("tiles/sub/t0.png", "tiles/sub/t1.png", "--gradcam", "cams", cwd=tmp_path)
    link, blocked = Path(tmp_path, records[0]["gradcam_files"][0]), Path(tmp_path, records[1]["gradcam_files"][1])
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link.unlink()
    link.symlink_to(victim)
    blocked.unlink()
    blocked.mkdir()
    done, records = classify_json("tiles/sub/t0.png", "tiles/sub/t1.png", "tiles/sub/t2.png", "--gradcam", "cams",
                                  cwd=tmp_path)
    assert done.returncode == 1
    assert records[0]["error"] == (f"Grad-CAM files not written: {link.name} is a symbolic link; "
                                   "refusing to write through it")
    assert records[1]["error"] == f"Grad-CAM files not written: {blocked.name} is a directory; refusing to replace it"
    assert "error" not in records[2] and len(records[2]["gradcam_files"]) == 2
    assert victim.read_text() == "keep me" and link.is_symlink()
    assert not [p for p in (tmp_path / "cams").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_gradcam_directory_is_a_per_tile_error(tmp_path, default_classifier, good_tile):
    cams = tmp_path / "cams"
    cams.mkdir(mode=0o555)
    results = default_classifier.classify_paths([good_tile], gradcam=True)
    assert write_gradcam_files(results, cams) == []
    assert "permission denied" in results[0].error and results[0].stages


# -- 10. a seeded fuzz of the header readers ----------------------------------------------------
# A short, seeded run in make test; `make fuzz` sets EDGEHISTO_FUZZ_EXAMPLES for a long one.
FUZZ_EXAMPLES = int(os.environ.get("EDGEHISTO_FUZZ_EXAMPLES", "400"))
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
          b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+",
          b"RIFF\x00\x00\x00\x00WEBPVP8X", b"RIFF\x00\x00\x00\x00WEBPVP8L"]


@settings(max_examples=FUZZ_EXAMPLES, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_mutated_images(), st.builds(bytes.__add__, st.sampled_from(_MAGIC), st.binary(max_size=64))))
def test_header_readers_and_decoding_raise_nothing_but_invalid_image(data):
    read_image_header(data)
    try:
        rgb = decode_rgb(data, max_pixels=1_000_000, min_side=1)
    except InvalidImage as error:
        assert "\n" not in str(error)
    else:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
