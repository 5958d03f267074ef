"""``edgehisto default-model --data DIR RUN:BUNDLE...``: choose and install the embedded default IDC model."""

from __future__ import annotations

import os
from pathlib import Path

import click


class RunBundle(click.ParamType):
    """A ``RUN_DIR:BUNDLE_DIR`` pair of existing directories."""

    name = "RUN:BUNDLE"

    def convert(self, value, param, ctx) -> tuple[Path, Path]:
        """Split ``RUN_DIR:BUNDLE_DIR`` into two existing directories."""
        if isinstance(value, tuple):
            return value
        run, colon, bundle = str(value).partition(":")
        if not (run and colon and bundle):
            self.fail(f"{value!r} is not RUN_DIR:BUNDLE_DIR", param, ctx)
        pair = Path(run), Path(bundle)
        for path in pair:
            if not path.is_dir():
                self.fail(f"{path} is not a directory", param, ctx)
        return pair


@click.command("default-model")
@click.argument("candidates", nargs=-1, type=RunBundle(), metavar="[RUN:BUNDLE]...")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The IDC data the candidates were trained on (val patients choose, test patients are reported).")
def default_model(candidates: tuple[tuple[Path, Path], ...], data_dir: Path) -> None:
    """Choose the embedded default IDC model among trained and exported candidates and install it.

    The candidate with the best int8 balanced accuracy on the val patients wins (then the lower
    int8 latency); it is copied into the package with its model card. Needs the [train] extra.
    """
    if not candidates:
        raise click.UsageError("give at least one RUN:BUNDLE candidate (a model is re-released from its run "
                               "directory, never from an installed bundle)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgehisto.release.default_model import install

    def progress(line: str) -> None:
        click.echo(line, err=True)

    installed = install(list(candidates), data_dir, log=progress)
    click.echo(f"installed {installed.dest} ({installed.total_bytes / 1e6:.2f} MB)")
