"""``edgehisto synth``: write synthetic tile datasets in the layouts of the real ones."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def synth() -> None:
    """Generate synthetic datasets for tests, demos and smoke training."""


@synth.command("idc")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="New or empty directory to write PATIENT/0|1/*.png into.",
)
@click.option("--n", "n", required=True, type=click.IntRange(min=1), help="Number of tiles.")
@click.option("--seed", required=True, type=click.IntRange(min=0), help="Same seed, same bytes.")
@click.option(
    "--patients", default=8, show_default=True, type=click.IntRange(min=1), help="Patients."
)
@click.option(
    "--positive-fraction",
    default=0.4,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of IDC-positive tiles.",
)
def idc(out_dir: Path, n: int, seed: int, patients: int, positive_fraction: float) -> None:
    """Write N H&E-like IDC tiles as PATIENT/0|1/PATIENT_idx5_xX_yY_classC.png.

    Positive tiles also get a PATIENT_idx5_xX_yY_class1_mask.png lesion mask.
    """
    # imported here so that `edgehisto --help` does not pay for OpenCV
    from edgehisto.train.synth_idc import synthesize_idc

    stderr = click.get_text_stream("stderr")
    with click.progressbar(length=n, label="synthesizing IDC tiles", file=stderr) as bar:
        shown = 0

        def advance(done: int, _total: int) -> None:
            nonlocal shown
            bar.update(done - shown)
            shown = done

        summary = synthesize_idc(
            out_dir, n, seed=seed, n_patients=patients,
            positive_fraction=positive_fraction, progress=advance,
        )
    click.echo(
        f"wrote {summary.n_tiles} tiles ({summary.n_positive} positive, "
        f"{summary.n_negative} negative, {summary.n_masks} masks, "
        f"{summary.n_undersized} undersized) for {len(summary.patients)} patients "
        f"to {summary.out_dir}"
    )
