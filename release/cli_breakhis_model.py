"""``edgehisto breakhis-model``: choose and install the embedded BreaKHis bundle; ``breakhis-card``: re-render it."""

from __future__ import annotations

import os
from pathlib import Path

import click

from edgehisto.release.cli_default_model import RunBundle

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command("breakhis-model")
@click.argument("candidates", nargs=-1, required=True, type=RunBundle(), metavar="RUN:BUNDLE...")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The BreaKHis images the candidates were trained on (val patients choose, test are reported).")
@click.option("--cv", "cv", type=_FILE, multiple=True,
              help="cv.json of a `train breakhis-cv` run (one per recipe compared), quoted by the card; repeatable.")
@click.option("--pretrain", "pretrain", type=_FILE, default=None,
              help="pretrain.json of `train pretrain-idc`, quoted by the card.")
@click.option("--probes", "probes", type=_FILE, default=None,
              help="probes.json of `train breakhis-probe`, quoted by the card.")
def breakhis_model(candidates: tuple[tuple[Path, Path], ...], data_dir: Path, cv: tuple[Path, ...],
                   pretrain: Path | None, probes: Path | None) -> None:
    """Choose the embedded BreaKHis model among trained and exported candidates and install it.

    The candidate with the best int8 binary balanced accuracy on the val patients wins. It is
    installed with a synthetic golden set, its model card and without the development-only files
    (Keras reference, TFLite). Needs the [train] extra.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgehisto.release.breakhis_model import install

    installed = install(list(candidates), data_dir, cv=cv, pretrain=pretrain, probes=probes,
                        log=lambda line: click.echo(line, err=True))
    click.echo(f"installed {installed.dest} ({installed.total_bytes / 1e6:.2f} MB)")


@click.command("breakhis-card")
@click.option("--cv", "later_cv", type=_FILE, multiple=True,
              help="cv.json of a `train breakhis-cv` run made after the model was trained; repeatable. "
                   "Replaces the card's later rows.")
@click.option("--pretrain", "later_pretrain", type=_FILE, default=None,
              help="pretrain.json of the backbone those later rows started from (needed with --cv).")
@click.option("--cv-precision", "later_precision", type=_FILE, multiple=True,
              help="cv_precision.json of `edgehisto cv-precision` on one of the --cv runs: its folds at fp32 and "
                   "int8; repeatable.")
@click.option("--bundle", "bundle_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The bundle whose card to render (default: the embedded breakhis model).")
def breakhis_card(later_cv: tuple[Path, ...], later_pretrain: Path | None, later_precision: tuple[Path, ...],
                  bundle_dir: Path | None) -> None:
    """Render the installed BreaKHis model card again, optionally with later CV rows.

    Nothing is measured again: the held-out figures are the card's own. Only the card's two files
    and their sha256 entries in the manifest change.
    """
    from edgehisto.release.breakhis_model import refresh_card

    options = {"dest": bundle_dir} if bundle_dir else {}
    card = refresh_card(**options, later_cv=later_cv, later_pretrain=later_pretrain, later_precision=later_precision)
    rows = len((card.get("later_cv") or {}).get("cv", {}))
    click.echo(f"rendered the card of {bundle_dir or 'the embedded breakhis model'} ({rows} later CV rows)")
