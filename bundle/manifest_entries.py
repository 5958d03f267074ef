"""Typed views of manifest entries beside the stages: the listed files and the golden set."""

from __future__ import annotations

from dataclasses import dataclass

from edgehisto.bundle.gates import Thresholds


@dataclass(frozen=True)
class FileEntry:
    """One listed file of a bundle: its sha256 and size."""

    sha256: str
    bytes: int | None = None


@dataclass(frozen=True)
class GoldenSet:
    """The manifest's ``golden`` entry: the tiles ``verify`` replays and where their expected outputs are."""

    entry: dict

    @property
    def tiles(self) -> tuple[str, ...]:
        """The golden tiles, relative to the bundle."""
        return tuple(self.entry["tiles"])

    @property
    def expected(self) -> str:
        """The ``.npz`` of expected outputs, relative to the bundle."""
        return self.entry["expected"]

    @property
    def origins(self) -> tuple[str, ...]:
        """Each tile's path relative to the data root it was drawn from."""
        return tuple(self.entry["origins"])

    @property
    def source(self) -> str:
        """Where the tiles came from, in words."""
        return str(self.entry.get("source", ""))

    @property
    def synthetic(self) -> bool:
        """Whether the golden tiles are synthetic (embedded bundles carry no real tissue)."""
        return self.source.startswith("synthetic")

    @property
    def thresholds(self) -> Thresholds:
        """The gate thresholds export recorded with the set."""
        return Thresholds.from_dict(self.entry["thresholds"])

    @property
    def int8_portability_max_abs_prob_diff(self) -> float:
        """How far this machine's int8 probabilities may be from those export recorded."""
        return self.entry["int8_portability_max_abs_prob_diff"]

    def with_source(self, source: str) -> dict:
        """The manifest entry with another ``source`` (every other key kept, in place)."""
        return {**self.entry, "source": source}
