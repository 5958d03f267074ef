"""What one bench run measures and how much, and the one way its tables are timed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgehisto.bench.timing import interleaved


def no_progress(_line: str) -> None:
    """The default progress callback of bench functions: say nothing (the CLI passes stderr)."""


@dataclass(frozen=True)
class BenchConfig:
    """What one bench run measures and how much."""
    repeats: int = 50
    batch: int = 32
    limit: int = 512
    process_repeats: int = 3
    profile_runs: int = 20
    keras_repeats: int = 25  # Keras predict is 5-60x slower: fewer samples (5 rounds) keep the run short


def timed_together(calls: dict[str, Callable[[], object]], config: BenchConfig, keras: bool = False) -> dict[str, dict]:
    """``interleaved`` with the run's repeats, fewer for a table with Keras ``predict`` (10-60x slower)."""
    repeats = min(config.keras_repeats, config.repeats) if keras else config.repeats
    # bursts of 5, as the tuning tables use: LiteRT's worker threads sleep between calls and the
    # first call of a burst pays their wake-up, so the burst length must not differ between reports
    return interleaved(calls, repeats, burst=min(5, repeats))
