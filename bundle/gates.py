"""Gate definitions shared by ``check-parity`` (export side) and ``verify`` (on the device).

A gate is one number compared with one threshold. Both commands build their verdicts from the
same ``Thresholds`` and the same ``pearson``, so "passes on this machine" means the same thing
in CI, at export and on a Raspberry Pi.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Thresholds:
    """Gate thresholds; the defaults are the documented ones (README, ``check-parity --help``)."""

    fp32_max_abs_diff: float = 1e-4
    int8_min_agreement: float = 0.97
    int8_max_accuracy_drop: float = 0.01
    gradcam_min_pearson: float = 0.99
    # int8 maps come from int8 activations, so they only approximate the fp32 map. Measured on the
    # embedded default (positive-class maps, 7-bit U8S8 weights): mean r 0.998, min 0.996 over 64 maps.
    gradcam_int8_min_mean_pearson: float = 0.95

    def to_dict(self) -> dict:
        """The thresholds as JSON-ready data (recorded in a bundle's golden set)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Thresholds:
        """Thresholds recorded by ``to_dict``."""
        return cls(**data)


@dataclass
class Gate:
    """One checked number: passes when ``value <rule> threshold``."""

    stage: str
    name: str
    value: float
    threshold: float
    rule: str  # "<=" or ">="
    passed: bool


class GateVerdict:
    """Mixin for a dataclass report with ``gates: list[Gate]``: the verdict and gate recording."""

    gates: list[Gate]

    @property
    def passed(self) -> bool:
        """True when there is at least one gate and every gate passes."""
        return bool(self.gates) and all(g.passed for g in self.gates)

    def gate(self, stage: str, name: str, value: float, threshold: float, rule: str) -> None:
        """Evaluate and record one gate."""
        self.gates.append(make_gate(stage, name, value, threshold, rule))

    def to_dict(self) -> dict:
        """The report as JSON-ready data, verdict included."""
        return {**asdict(self), "passed": self.passed}


def make_gate(stage: str, name: str, value: float, threshold: float, rule: str) -> Gate:
    """Evaluate one gate (a NaN value never passes)."""
    value = float(value)
    ok = value <= threshold if rule == "<=" else value >= threshold
    return Gate(stage, name, value, float(threshold), rule, bool(ok))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two maps; two (near-)constant equal maps count as r = 1, else as 0."""
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    scale = max(np.abs(a).max(initial=0), np.abs(b).max(initial=0), 1e-12)
    flat_a, flat_b = np.ptp(a) <= 1e-6 * scale, np.ptp(b) <= 1e-6 * scale
    if flat_a or flat_b:
        return 1.0 if flat_a and flat_b and np.allclose(a, b, atol=1e-6 * scale) else 0.0
    return float(np.corrcoef(a, b)[0, 1])


def format_gates(gates: list[Gate], reported: dict[str, dict[str, float]]) -> list[str]:
    """Gates and reported values as aligned text lines (no verdict line)."""
    # The columns fit the longest stage and gate name (``malignant_subtype`` is 17 characters).
    w = max([len("stage"), *(len(g.stage) for g in gates), *(len(s) for s in reported)])
    n = max([34, *(len(g.name) for g in gates), *(len(k) for v in reported.values() for k in v)])
    lines = [f"{'stage':<{w}} {'gate':<{n}} {'value':>12} {'rule':>4} {'threshold':>10}  result"]
    for g in gates:
        lines.append(f"{g.stage:<{w}} {g.name:<{n}} {g.value:>12.6g} {g.rule:>4} {g.threshold:>10.4g}  "
                     f"{'PASS' if g.passed else 'FAIL'}")
    for stage, values in reported.items():
        for key, value in values.items():
            lines.append(f"{stage:<{w}} {key:<{n}} {value:>12.6g}  (reported)")
    return lines
