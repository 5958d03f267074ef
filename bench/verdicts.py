"""Bench verdicts: a target judged from one run's numbers, stated for this machine's ISA class.

Latency targets are ratios of two calls timed together in rotating rounds (``bench.timing.interleaved``),
so each ratio exists per round too. A ratio target is "met" when the median ratio is on the right
side of the line by at least the noise factor ``NOISE_RATIO`` (5%, multiplicative) and at least
``CONSISTENT_ROUNDS`` of the rounds are on the right side of the line; "missed" when the same holds
the other way; anything else is "within noise". The onnxruntime tuning tables use the same two
numbers (``ort_tuning.compare``: a difference counts when it is >= 5% and the faster variant wins
>= 80% of the rounds): on a shared 2-core machine two identical graphs once measured 2.5x apart in
one table when load bursts hit, so one median alone is not a verdict.
"""

from __future__ import annotations

import numpy as np

NOISE_RATIO, CONSISTENT_ROUNDS = 1.05, 0.8


def _holds(value: float, threshold: float, rule: str) -> bool:
    return value <= threshold if rule == "<=" else value >= threshold


def value_target(name: str, value: float | None, threshold: float, rule: str, isa: str, note: str = "") -> dict:
    """A target on one number (an agreement, an accuracy drop, a cold start): met or missed.

    ``value`` None means the run could not measure it: the verdict is "not measured", never "met".
    """
    if value is None:
        return {"target": name, "value": None, "threshold": threshold, "rule": rule, "met": False,
                "verdict": "not measured", "isa": isa, "note": note}
    met = _holds(float(value), threshold, rule)
    return {"target": name, "value": float(value), "threshold": threshold, "rule": rule, "met": met,
            "verdict": "met" if met else "missed", "isa": isa, "note": note}


def ratio_target(name: str, numerator: dict, denominator: dict, threshold: float, rule: str, isa: str,
                 note: str = "") -> dict:
    """A target on the ratio of two interleaved latencies (``median_ms`` and ``round_medians_ms`` each)."""
    value = numerator["median_ms"] / denominator["median_ms"]
    per_round = [a / b for a, b in zip(numerator["round_medians_ms"], denominator["round_medians_ms"], strict=True)]
    holding = sum(_holds(r, threshold, rule) for r in per_round)
    rounds = len(per_round)
    clearly_holds = _holds(value, threshold / NOISE_RATIO if rule == "<=" else threshold * NOISE_RATIO, rule)
    clearly_fails = not _holds(value, threshold * NOISE_RATIO if rule == "<=" else threshold / NOISE_RATIO, rule)
    if clearly_holds and holding >= CONSISTENT_ROUNDS * rounds:
        verdict = "met"
    elif clearly_fails and rounds - holding >= CONSISTENT_ROUNDS * rounds:
        verdict = "missed"
    else:
        verdict = "within noise"
    spread = [float(np.min(per_round)), float(np.max(per_round))] if per_round else None
    return {"target": name, "value": float(value), "threshold": threshold, "rule": rule,
            "met": verdict == "met", "verdict": verdict, "isa": isa, "rounds": f"{holding}/{rounds}",
            "round_ratio_range": spread, "note": note}
