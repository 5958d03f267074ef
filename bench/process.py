"""Whole-process measurements: cold-start wall time and peak RSS of a command (call latencies: ``bench.timing``)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

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
