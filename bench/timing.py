"""Latency, throughput and whole-process measurements (wall clock, one bench run, as ratios)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np


def latency_ms(call: Callable[[], object], repeats: int, warmup: int = 3) -> dict:
    """Median and p95 wall-clock milliseconds of ``call`` after a warm-up."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000.0)
    return {"median_ms": float(np.median(samples)), "p95_ms": float(np.percentile(samples, 95)),
            "repeats": repeats}


def throughput(call: Callable[[], object], batch: int, repeats: int) -> float:
    """Tiles per second of a batched ``call``."""
    call()
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return batch * repeats / (time.perf_counter() - start)


_PROBE = """
import resource, subprocess, sys, time, json
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True)
wall = time.perf_counter() - start
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"seconds": wall, "peak_rss_mb": peak_kb / 1024, "exit_code": done.returncode}))
"""


def whole_process(command: list[str], repeats: int = 3) -> dict:
    """Cold-start wall time and peak RSS of a command, each run in a fresh measuring process.

    Returns the median over ``repeats`` (the first run also pays the OS file cache).
    """
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", _PROBE, *command], capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout))
    return {
        "seconds": float(np.median([r["seconds"] for r in runs])),
        "peak_rss_mb": float(np.median([r["peak_rss_mb"] for r in runs])),
        "exit_codes": sorted({r["exit_code"] for r in runs}),
        "command": command,
    }
