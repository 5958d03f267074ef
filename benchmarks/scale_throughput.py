"""Tiles/s of ``edgehisto batch`` with the Ray engine against the single-process engine.

Writes N synthetic IDC tiles, then runs, in alternating order, ``--engine local`` and
``--engine ray --workers W`` into fresh output folders (each run a fresh process, as a user runs
it), and reports the median wall time of each and the ratio. Ray's start-up (a local instance,
the actor pool, the bundle loaded once per actor) is inside its wall time, as it is for a user.

    python benchmarks/scale_throughput.py --out bench-output --tiles 2000 --workers 2 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-output"))
    parser.add_argument("--tiles", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    edgehisto = str(Path(sys.executable).with_name("edgehisto"))
    times: dict[str, list[float]] = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory() as scratch:
        tiles = Path(scratch) / "tiles"
        subprocess.run([edgehisto, "synth", "idc", "--out", str(tiles), "--n", str(args.tiles), "--seed", "0"],
                       check=True, capture_output=True)
        for mask in tiles.rglob("*_mask.png"):
            mask.unlink()
        for index in range(args.rounds):
            order = ("local", "ray") if index % 2 == 0 else ("ray", "local")
            for engine in order:
                out = Path(scratch) / f"out-{engine}-{index}"
                command = [edgehisto, "batch", str(tiles), "--out", str(out), "--engine", engine]
                if engine == "ray":
                    command += ["--workers", str(args.workers)]
                started = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                times[engine].append(time.perf_counter() - started)
    medians = {engine: statistics.median(values) for engine, values in times.items()}
    cpu = sorted({f for f in ("avx512_vnni", "avx_vnni", "avx2") if f in Path("/proc/cpuinfo").read_text()})
    report = {"cpu_flags": cpu, "cores": os.cpu_count(), "tiles": args.tiles, "ray_workers": args.workers,
              "rounds": args.rounds, "wall_s": times,
              "tiles_per_s": {e: round(args.tiles / m, 1) for e, m in medians.items()},
              "ray_over_local_time": round(medians["ray"] / medians["local"], 2)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
