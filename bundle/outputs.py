"""How a stage's ``probabilities`` output becomes one probability per class (part of the contract).

A stage's ``output`` kind says what its probabilities tensor holds: ``softmax`` is already one
column per class; ``sigmoid`` is a single column, P(second class), for a two-class stage.
"""

from __future__ import annotations

import numpy as np

OUTPUTS = ("sigmoid", "softmax")


def class_probabilities(raw: np.ndarray, output: str) -> np.ndarray:
    """(N, K) class probabilities of a stage's raw probabilities output.

    Args:
        raw: (N, 1) for a ``sigmoid`` stage, (N, K) for a ``softmax`` stage.
        output: the stage's output kind, one of ``OUTPUTS``.

    Returns:
        A single sigmoid column p as [1 - p, p]; softmax rows unchanged. The dtype is the input's
        (callers that compare against a float64 reference cast before calling).
    """
    raw = np.asarray(raw)
    if output == "sigmoid":
        return np.concatenate([1.0 - raw, raw], axis=1)
    return raw


def probability_column(class_name: str) -> str:
    """The table column of a class's probability, the same in ``classify`` CSV and ``batch`` Parquet."""
    return f"p_{class_name}"
