"""Peak RSS of ``edgehisto classify`` on a hostile batch against a good batch of the same size.

    python benchmarks/hostile_memory.py [--out bench-output/hostile_memory.json]

The hostile batch mixes good tiles with a decompression-bomb PNG, a TIFF declaring 100 Mpx, a
sparse 1 GB file, a truncated PNG, an empty file and text named .png. Each batch runs in its own
process, measured through a fresh parent so that ``RUSAGE_CHILDREN`` sees that run alone. Exits 1
when the hostile batch needs more than twice the good batch's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import cv2
import numpy as np

MEASURE = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""
LIMIT = 2.0


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(side: int = 20_000) -> bytes:
    """A valid-looking PNG header declaring side x side RGB pixels, with little data behind it."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    body = zlib.compress(bytes(1 + 3 * side) * 64)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def tiff_bomb(side: int = 10_000) -> bytes:
    """A little-endian TIFF whose header declares side x side 8-bit RGB pixels."""
    entries = [(256, 4, 1, side), (257, 4, 1, side), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, 1, 8), (277, 3, 1, 3), (278, 4, 1, side), (279, 4, 1, 3 * side * side)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0\0\0\0"
    return b"II*\x00" + struct.pack("<I", 8) + ifd + bytes(4096)


def write_batches(folder: Path, n_good: int = 24) -> tuple[list[Path], list[Path]]:
    """(good batch, hostile batch) of files, the hostile one holding the good tiles too."""
    rng = np.random.default_rng(0)
    good = []
    for i in range(n_good):
        good.append(folder / f"good_{i:02d}.png")
        cv2.imwrite(str(good[-1]), rng.integers(0, 256, (50, 50, 3), dtype=np.uint8))
    hostile = {"bomb.png": bomb_png(), "bomb.tif": tiff_bomb(), "truncated.png": good[0].read_bytes()[:200],
               "empty.png": b"", "text.png": b"label,path\n"}
    for name, data in hostile.items():
        (folder / name).write_bytes(data)
    sparse = folder / "sparse.png"
    with open(sparse, "wb") as handle:
        handle.truncate(1 << 30)
    bad = [folder / name for name in hostile] + [sparse]
    return good[: n_good - len(bad)] + bad, good[: n_good - len(bad)] + good[n_good - len(bad):]


def peak_rss_kb(command: list[str]) -> int:
    """Peak resident set size (KB) of one run of ``command``."""
    done = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


def main() -> int:
    """Measure both batches three times each, interleaved; report the medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-output/hostile_memory.json"))
    args = parser.parse_args()
    script = Path(sys.executable).with_name("edgehisto")
    with tempfile.TemporaryDirectory() as scratch:
        hostile, good = write_batches(Path(scratch))
        runs = {"good": [], "hostile": []}
        for _ in range(3):
            for name, files in (("good", good), ("hostile", hostile)):
                runs[name].append(peak_rss_kb([str(script), "classify", *map(str, files), "--format", "json"]))
    medians = {name: float(np.median(values)) / 1024 for name, values in runs.items()}
    ratio = medians["hostile"] / medians["good"]
    report = {"peak_rss_mb": medians, "runs_kb": runs, "ratio": ratio, "limit": LIMIT, "batch": len(good)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"peak RSS: good {medians['good']:.0f} MB, hostile {medians['hostile']:.0f} MB, ratio {ratio:.2f} "
          f"(limit {LIMIT}) -> {args.out}")
    return 0 if ratio <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
