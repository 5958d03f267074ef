"""Wall-clock timing of calls: the one harness every latency in the project is measured with.

numpy and ``time`` only, so the same numbers can be taken on a device that has the runtime alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def samples_ms(call: Callable[[], object], repeats: int) -> list[float]:
    """Wall-clock milliseconds of ``repeats`` back-to-back calls."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def summary(samples: list[float]) -> dict:
    """Median and p95 of latency samples (ms)."""
    return {"median_ms": float(np.median(samples)), "p95_ms": float(np.percentile(samples, 95))}


def latency_ms(call: Callable[[], object], repeats: int, warmup: int = 3) -> dict:
    """Median and p95 wall-clock milliseconds of ``call`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        call()
    return {**summary(samples_ms(call, repeats)), "repeats": repeats}


def throughput(call: Callable[[], object], batch: int, repeats: int) -> float:
    """Tiles per second of a batched ``call`` (after one untimed call)."""
    call()
    return batch * repeats / (sum(samples_ms(call, repeats)) / 1000.0)


def quiesce(step: float = 0.02, limit: float = 0.5) -> None:
    """Wait until this process's idle worker threads stop spinning (~0.1 s after an onnxruntime run).

    Without this a variant would be timed while the previous variant's intra-op workers still spin
    and take one of the two cores, which slowed batch-1 calls up to 8x in a round-robin.
    """
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        before = time.process_time()
        time.sleep(step)
        if time.process_time() - before < 0.1 * step:
            return


def interleaved(calls: dict[str, Callable[[], object]], repeats: int, burst: int = 5) -> dict[str, dict]:
    """Median, p95 and per-round medians (ms) of each call, timed together so load hits them alike.

    Rounds go over the calls (starting one later each round); per turn a ``quiesce``, one untimed
    call, then ``burst`` timed back-to-back calls, until each call has about ``repeats`` samples.
    """
    names, burst = list(calls), max(1, min(burst, repeats))
    rounds: dict[str, list[list[float]]] = {name: [] for name in names}
    for round_ in range(-(-repeats // burst)):
        for i in range(len(names)):
            name = names[(round_ + i) % len(names)]
            quiesce()
            calls[name]()
            rounds[name].append(samples_ms(calls[name], burst))
    return {name: {**summary([s for r in per_round for s in r]),
                   "round_medians_ms": [float(np.median(r)) for r in per_round]}
            for name, per_round in rounds.items()}
