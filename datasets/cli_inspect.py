"""``edgehisto inspect``: summarise a data directory (layout, classes, patients, problems)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("inspect")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def inspect_cmd(data_dir: Path, as_json: bool) -> None:
    """Detect DATA_DIR's layout and report class counts, patients, odd-sized tiles and problems.

    Knows the IDC patch layout and BreaKHis v1 (give the folder holding BreaKHis_v1, or any
    folder down to its `breast` folder).
    """
    from edgehisto.datasets.inspect_data import inspect_dataset

    summary = inspect_dataset(data_dir)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo("\n".join(_format_summary(summary)))


def _format_summary(summary: dict) -> list[str]:
    """Render an inspect summary as readable lines of text, in its layout's own tables."""
    return _FORMATTERS[summary["layout"]](summary)


def _format_idc(summary: dict) -> list[str]:
    """Lines for an IDC summary: classes, patients, undersized tiles, masks and problems."""
    from edgehisto.datasets.idc import TILE_SIZE

    return [
        *_heading(summary),
        *_class_table(summary),
        "",
        *_patient_table(summary),
        "",
        f"undersized (< {TILE_SIZE} px on a side, padded at preprocessing): {summary['n_undersized']}",
        *_sized_tiles(summary["undersized"]),
        *_masks_and_problems(summary),
    ]


def _heading(summary: dict) -> list[str]:
    """Layout, root and tile count, then a blank line."""
    return [
        f"layout:   {summary['layout']}",
        f"root:     {summary['root']}",
        f"tiles:    {summary['n_tiles']}",
        "",
    ]


def _sized_tiles(tiles: list[dict]) -> list[str]:
    """One indented ``relpath  WxH`` line per tile."""
    return [f"  {t['relpath']}  {t['width']}x{t['height']}" for t in tiles]


def _masks_and_problems(summary: dict) -> list[str]:
    """The attached-mask count, then every problem file with its reason."""
    return [
        f"masks attached: {summary['n_masks']}",
        f"problems (files left out): {summary['n_problems']}",
        *(f"  {p['path']}: {p['reason']}" for p in summary["problems"]),
    ]


def _share_table(heading: str, counts: dict[str, int], n_tiles: int) -> list[str]:
    """Lines of a count table: one row per name, with its tiles and their share of all tiles."""
    total = max(n_tiles, 1)
    return [f"{heading:<20} {'tiles':>7} {'share':>7}",
            *(f"{name:<20} {count:>7} {count / total:>7.1%}" for name, count in counts.items())]


def _class_table(summary: dict) -> list[str]:
    """Lines of the per-class count table."""
    names = summary["class_names"]
    counts = {f"{label} ({names[label]})": count for label, count in summary["class_counts"].items()}
    return _share_table("class", counts, summary["n_tiles"])


def _patient_table(summary: dict) -> list[str]:
    """Lines of the per-patient, per-class count table."""
    labels = list(summary["class_counts"])
    header = f"{'patient':<12}" + "".join(f" {'class ' + label:>8}" for label in labels)
    lines = [f"{summary['n_patients']} patients", header + f" {'total':>8}"]
    for patient, counts in summary["patients"].items():
        cells = "".join(f" {counts[label]:>8}" for label in labels)
        lines.append(f"{patient:<12}{cells} {sum(counts.values()):>8}")
    return lines


def _format_breakhis(summary: dict) -> list[str]:
    """Lines for a BreaKHis summary: labels, subtype x magnification, folders, slides."""
    shared = {s: v["patient_folders"] for s, v in summary["slides"].items()
              if len(v["patient_folders"]) > 1}
    return [
        *_heading(summary),
        *_label_table(summary),
        "",
        *_subtype_table(summary),
        "",
        f"{summary['n_patient_folders']} patient folders, {summary['n_slides']} numeric slide ids "
        f"(patient-level splits group by '{summary['split_key']}' by default)",
        f"slide ids in more than one folder: {len(shared)}",
        *(f"  {slide}: {', '.join(folders)}" for slide, folders in shared.items()),
        "",
        *_folder_table(summary),
        "",
        "roots: " + ", ".join(f"{name}/ {n}" for name, n in summary["roots"].items()),
        f"fields published squashed to a square (aspect ratio not kept): {summary['n_squashed']}",
        f"images not 700x460: {summary['n_off_size']}",
        *_sized_tiles(summary["off_size"]),
        *_masks_and_problems(summary),
    ]


def _label_table(summary: dict) -> list[str]:
    """Lines of the benign/malignant count table."""
    return _share_table("label", summary["binary_counts"], summary["n_tiles"])


def _magnification_row(counts: dict[str, int]) -> str:
    """Right-aligned cells for each magnification's count, then the row total."""
    return "".join(f" {n:>6}" for n in counts.values()) + f" {sum(counts.values()):>7}"


def _magnification_header(first: str, summary: dict) -> str:
    """Header of a table whose columns are the magnifications and a total."""
    columns = "".join(f" {m + 'X':>6}" for m in summary["magnification_counts"])
    return f"{first}{columns} {'total':>7}"


def _subtype_table(summary: dict) -> list[str]:
    """Lines of the subtype x magnification count table, with a totals row."""
    lines = [_magnification_header(f"{'subtype':<26} {'label':<10}", summary)]
    for code, subtype in summary["subtypes"].items():
        name = f"{code} ({subtype['name']})"
        lines.append(f"{name:<26} {subtype['label']:<10}"
                     + _magnification_row(subtype["magnification_counts"]))
    lines.append(f"{'total':<37}" + _magnification_row(summary["magnification_counts"]))
    return lines


def _folder_table(summary: dict) -> list[str]:
    """Lines of the per-patient-folder, per-magnification count table."""
    lines = [_magnification_header(f"{'patient folder':<24} {'slide':<10}", summary)]
    for name, folder in summary["patient_folders"].items():
        lines.append(f"{name:<24} {folder['slide']:<10}"
                     + _magnification_row(folder["magnification_counts"]))
    return lines


_FORMATTERS = {"idc": _format_idc, "breakhis": _format_breakhis}
