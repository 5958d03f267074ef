"""The one progress protocol: library loops report ``progress(done, total, label)``, the CLI draws.

It sits in the lowest room so that every room's loops report alike; ``edgehisto.cli_progress``
is the one drawer (a bar on a terminal, a few lines in a log).
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """A callback a library loop reports its progress to."""

    def __call__(self, done: int, total: int, label: str, /) -> None:
        """After a step: ``done`` of ``total`` items of the kind ``label`` names (e.g. "int8 tiles").

        Reports of one label come in increasing ``done``; a new label starts a new loop.
        """


def no_progress(done: int, total: int, label: str, /) -> None:
    """The default ``Progress``: say nothing."""
