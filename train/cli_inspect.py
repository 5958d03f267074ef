"""``edgehisto inspect``: summarise a data directory (layout, classes, patients, problems)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("inspect")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def inspect_cmd(data_dir: Path, as_json: bool) -> None:
    """Detect DATA_DIR's layout and report class counts, patients, undersized tiles and problems."""
    from edgehisto.train.inspect_data import inspect_dataset

    summary = inspect_dataset(data_dir)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo("\n".join(_format_summary(summary)))


def _format_summary(summary: dict) -> list[str]:
    """Render an inspect summary as readable lines of text."""
    lines = [
        f"layout:   {summary['layout']}",
        f"root:     {summary['root']}",
        f"tiles:    {summary['n_tiles']}",
        "",
        *_class_table(summary),
        "",
        *_patient_table(summary),
        "",
        f"undersized (< 50 px on a side, padded at preprocessing): {summary['n_undersized']}",
        *(f"  {t['relpath']}  {t['width']}x{t['height']}" for t in summary["undersized"]),
        f"masks attached: {summary['n_masks']}",
        f"problems (files left out): {summary['n_problems']}",
        *(f"  {p['path']}: {p['reason']}" for p in summary["problems"]),
    ]
    return lines


def _class_table(summary: dict) -> list[str]:
    """Lines of the per-class count table."""
    total = max(summary["n_tiles"], 1)
    lines = [f"{'class':<20} {'tiles':>7} {'share':>7}"]
    for label, count in summary["class_counts"].items():
        name = f"{label} ({summary['class_names'][label]})"
        lines.append(f"{name:<20} {count:>7} {count / total:>7.1%}")
    return lines


def _patient_table(summary: dict) -> list[str]:
    """Lines of the per-patient, per-class count table."""
    labels = list(summary["class_counts"])
    header = f"{'patient':<12}" + "".join(f" {'class ' + label:>8}" for label in labels)
    lines = [f"{summary['n_patients']} patients", header + f" {'total':>8}"]
    for patient, counts in summary["patients"].items():
        cells = "".join(f" {counts[label]:>8}" for label in labels)
        lines.append(f"{patient:<12}{cells} {sum(counts.values()):>8}")
    return lines
