"""``edgehisto map`` throughput and memory as the tile count grows (1k, 10k, 100k tiles).

Each size is a patch folder of coordinate-named IDC patches on a square grid; the files are hard links
to 64 distinct synthetic patches, so a 100k-tile folder costs no disk. Each run is the installed
command in its own process, its peak RSS read from the kernel (``ru_maxrss`` of that child, from wait4), its tiles/s
from its own summary.json. Precisions alternate within a size, so load hits both alike. Writes
map_throughput.{json,md} with the CPU kind.

    python benchmarks/map_throughput.py --out bench-output [--sizes 1000 10000 100000] [--model idc]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

CONSOLE_SCRIPT = Path(sys.executable).with_name("edgehisto")
TARGET_TILES_PER_SECOND, TARGET_RSS_MB = 1000.0, 400.0


def patch_folder(root: Path, n: int, distinct: int = 64) -> Path:
    """A folder of ``n`` coordinate-named 50x50 patches of patient 1, hard links to ``distinct`` files."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    sources = []
    for i in range(distinct):
        tile = np.empty((50, 50, 3), np.uint8)
        tile[:] = (200, 150, 220)
        for _ in range(int(rng.integers(5, 30))):
            x, y = rng.integers(3, 47, 2)
            cv2.circle(tile, (int(x), int(y)), int(rng.integers(2, 4)), (150, 60, 110), -1)
        path = root / f"source{i}.png"
        if not cv2.imwrite(str(path), tile):
            raise SystemExit(f"cannot write {path}")
        sources.append(path)
    folder = root / f"tiles{n}" / "1"
    folder.mkdir(parents=True)
    side = int(np.ceil(np.sqrt(n)))
    for k in range(n):
        x, y = 1 + 50 * (k % side), 1 + 50 * (k // side)
        os.link(sources[k % distinct], folder / f"1_idx5_x{x}_y{y}_class{k % 2}.png")
    return folder.parent


def run_map(folder: Path, out: Path, model: str, precision: str) -> dict:
    """One ``edgehisto map`` run: its summary facts plus wall time and that child's own peak RSS."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as stderr:
        child = subprocess.Popen([str(CONSOLE_SCRIPT), "map", str(folder), "--model", model, "--precision", precision,
                                  "--out", str(out)], stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)  # the rusage of this child alone
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            stderr.seek(0)
            raise SystemExit(f"edgehisto map failed ({os.waitstatus_to_exitcode(status)}): {stderr.read()[-500:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {"tiles": summary["tiles"]["classified"], "precision": precision, "tiles_per_second":
            summary["tiles_per_second"], "wall_s": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "cpu": summary["cpu"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--model", default="idc")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for n in sorted(args.sizes):
            folder = patch_folder(Path(scratch) / f"n{n}", n)
            for precision in ("int8", "fp32"):
                rows.append({"n": n, **run_map(folder, Path(scratch) / f"out{n}{precision}", args.model, precision)})
                print(json.dumps(rows[-1]), flush=True)
            shutil.rmtree(folder.parent)
    int8 = [r for r in rows if r["precision"] == "int8"]
    per_tile = [r["wall_s"] / r["n"] for r in int8]
    report = {"rows": rows, "targets": {"tiles_per_second_int8": TARGET_TILES_PER_SECOND, "peak_rss_mb": TARGET_RSS_MB},
              "linearity": "wall seconds per tile at each size: " + ", ".join(f"{p * 1e3:.2f} ms" for p in per_tile)}
    (args.out / "map_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# edgehisto map throughput ({rows[0]['cpu']})", "",
             "| tiles | precision | tiles/s (classify loop) | wall s (whole command) | peak RSS MB |",
             "|---:|---|---:|---:|---:|"]
    lines += [f"| {r['n']:,} | {r['precision']} | {r['tiles_per_second']} | {r['wall_s']} | {r['peak_rss_mb']} |"
              for r in rows]
    best = max(r["tiles_per_second"] for r in int8)
    biggest = max(int8, key=lambda r: r["n"])
    lines += ["", f"Targets: at least {TARGET_TILES_PER_SECOND:,.0f} tiles/s at int8: best measured {best} "
              f"({'met' if best >= TARGET_TILES_PER_SECOND else 'missed'}); peak RSS at most {TARGET_RSS_MB:.0f} MB "
              f"at {biggest['n']:,} tiles: {biggest['peak_rss_mb']} "
              f"({'met' if biggest['peak_rss_mb'] <= TARGET_RSS_MB else 'missed'}).", report["linearity"] + "."]
    (args.out / "map_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
