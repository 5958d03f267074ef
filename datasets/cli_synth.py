"""``edgehisto synth``: write synthetic tile datasets in the layouts of the real ones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click


def _dataset_options(layout: str, items: str) -> Callable:
    """The options every synth command takes: --out (written in ``layout``), --n ``items`` and --seed."""
    options = (
        click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
                     help=f"New or empty directory to write {layout} into."),
        click.option("--n", "n", required=True, type=click.IntRange(min=1), help=f"Number of {items}."),
        click.option("--seed", required=True, type=click.IntRange(min=0), help="Same seed, same bytes."),
    )

    def decorate(command: Callable) -> Callable:
        for option in reversed(options):  # click lists options in decorator order, top first
            command = option(command)
        return command

    return decorate


@click.group()
def synth() -> None:
    """Generate synthetic datasets for tests, demos and smoke training."""


@synth.command("idc")
@_dataset_options("PATIENT/0|1/*.png", "tiles")
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
    from edgehisto.cli_progress import progress_reporter
    from edgehisto.datasets.synth_idc import synthesize_idc

    with progress_reporter() as progress:
        summary = synthesize_idc(
            out_dir, n, seed=seed, n_patients=patients,
            positive_fraction=positive_fraction, progress=progress,
        )
    click.echo(
        f"wrote {summary.n_tiles} tiles ({summary.n_positive} positive, "
        f"{summary.n_negative} negative, {summary.n_masks} masks, "
        f"{summary.n_undersized} undersized) for {len(summary.patients)} patients "
        f"to {summary.out_dir}"
    )


@synth.command("breakhis")
@_dataset_options("BreaKHis_v1/histology_slides/breast/...", "images")
@click.option(
    "--patients-per-subtype",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Patient folders per subtype (3+ adds a second section of one slide).",
)
def breakhis(out_dir: Path, n: int, seed: int, patients_per_subtype: int) -> None:
    """Write N 700x460 H&E-like BreaKHis images: 8 subtypes x 40/100/200/400X, real layout.

    Malignant images also get a <stem>_mask.png lesion mask.
    """
    # imported here so that `edgehisto --help` does not pay for OpenCV
    from edgehisto.cli_progress import progress_reporter
    from edgehisto.datasets.synth_breakhis import synthesize_breakhis

    with progress_reporter() as progress:
        summary = synthesize_breakhis(
            out_dir, n, seed=seed, n_patients_per_subtype=patients_per_subtype, progress=progress
        )
    counts = summary.binary_counts
    click.echo(
        f"wrote {summary.n_images} images ({counts['benign']} benign, "
        f"{counts['malignant']} malignant, {summary.n_masks} masks) for "
        f"{len(summary.patient_folders)} patient folders ({len(summary.slides)} slides) "
        f"to {summary.out_dir}"
    )
