"""The options of every command that can run on a Ray actor pool (``batch``, ``map``): stated once."""

from __future__ import annotations

from collections.abc import Callable

import click


def ray_pool_options(address_help: str) -> Callable[[Callable], Callable]:
    """``--workers`` and ``--address``, in that order; ``address_help`` says what the cluster must share."""
    workers = click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1),
                           help="Ray actors (each loads the bundle once and uses one core).")
    address = click.option("--address", default=None, help=address_help)
    return lambda command: workers(address(command))
