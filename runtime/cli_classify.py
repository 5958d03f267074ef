"""``edgehisto classify PATH... [--model BUNDLE]``: classify tiles, optionally with Grad-CAM."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import click

from edgehisto.bundle.manifest import PRECISIONS
from edgehisto.bundle.outputs import probability_column


@click.command("classify")
@click.argument("paths", nargs=-1, required=True)
@click.option("--model", "bundle_dir", default=None, type=click.Path(path_type=Path),
              help="An embedded model's name (idc, breakhis; see `edgehisto models`) or a bundle directory. "
                   "Default: the embedded IDC model.")
@click.option("--precision", default="fp32", show_default=True, type=click.Choice(PRECISIONS),
              help="fp32 is the default here: a single file gets the reference numbers the parity gates are "
                   "measured against. int8 is the edge path (batch and serve default to it, for throughput); "
                   "its labels agree with fp32's on the held-out tiles (see verify).")
@click.option("--gradcam", "gradcam_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Write a Grad-CAM overlay PNG and the raw map (.npy) per tile and stage here.")
@click.option("--format", "fmt", default="table", show_default=True, type=click.Choice(["table", "json", "csv"]))
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--threads", default=None, type=click.IntRange(min=1), help="onnxruntime intra-op threads.")
@click.option("--allow-failed-parity", is_flag=True,
              help="Use a bundle that failed (or never ran) its parity gates; every record says so.")
@click.option("--max-file-mb", default=64.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Refuse tile files larger than this many MB (2^20 bytes), checked before reading.")
def classify(paths: tuple[str, ...], bundle_dir: Path | None, precision: str, gradcam_dir: Path | None,
             fmt: str, batch_size: int, threads: int | None, allow_failed_parity: bool,
             max_file_mb: float) -> None:
    """Classify image files, directories or glob patterns (CPU, onnxruntime).

    Records come in the order of the arguments. Exit code 0 if every tile was classified, 1 if
    any failed (each failure is a record with an ``error``), 2 for usage errors or an unusable
    bundle.
    """
    from edgehisto.runtime.classifier import Classifier, TileResult
    from edgehisto.runtime.inputs import expand_inputs
    from edgehisto.runtime.registry import resolve_bundle

    classifier = Classifier(resolve_bundle(bundle_dir), precision=precision, threads=threads,
                            allow_failed_parity=allow_failed_parity)
    if classifier.warning:
        click.echo(f"warning: {classifier.warning}", err=True)
    inputs = expand_inputs(list(paths))
    classified = iter(classifier.classify_paths(
        [item.path for item in inputs if item.error is None], gradcam=gradcam_dir is not None,
        batch_size=batch_size, max_file_bytes=int(max_file_mb * 2**20)))
    results = [next(classified) if item.error is None else TileResult(path=item.path, error=item.error)
               for item in inputs]
    if gradcam_dir is not None:
        from edgehisto.runtime.outputs import write_gradcam_files

        write_gradcam_files(results, gradcam_dir,
                            {name: stage.gradcam_display_peak for name, stage in classifier.stages.items()})
    records = [r.to_record() for r in results]
    click.echo(render(records, fmt), nl=False)
    if any(r.ok for r in results):  # as the kiosk shows it beside a result
        echo_caveat(classifier.bundle)
    failed = sum(1 for r in results if not r.ok)
    if failed:
        click.echo(f"{failed} of {len(results)} inputs failed", err=True)
        raise click.exceptions.Exit(1)


def echo_caveat(bundle) -> None:
    """The model card's one line against trusting a label, on stderr, when the card has one (classify, map)."""
    line = bundle.caveat  # read from the card file on each access
    if line:
        click.echo(f"caveat (model card): {line}", err=True)


# Characters that could end a row, forge a column or reorder text on a terminal: controls
# (newline, tab, ESC), Unicode line and paragraph separators, format characters (bidi
# overrides), lone surrogates from undecodable file names, and the escape character itself.
_UNSAFE = re.compile(r"[\\\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    character = match.group()
    if character in _ESCAPES:
        return _ESCAPES[character]
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(value: object) -> str:
    """A table or CSV cell that stays on its line: unsafe characters become backslash escapes
    (``\\n``, ``\\t``, ``\\x1b``, ``\\u202e``; a backslash doubles), so every row is one line."""
    return _UNSAFE.sub(_escape, str(value))


def render(records: list[dict], fmt: str) -> str:
    """Records as JSON, CSV or an aligned table (the text ends with a newline).

    JSON is strict (no NaN, non-ASCII escaped); in a table or CSV every cell is ``one_line``.
    """
    if fmt == "json":
        return json.dumps(records, indent=2, allow_nan=False) + "\n"
    rows = [{one_line(key): one_line(value) for key, value in _flat(r).items()} for r in records]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    shown = [c for c in ("path", "label", "confidence", "subtype", "subtype_confidence", "error", "warning")
             if c in columns]
    widths = {c: max(len(c), *(len(str(row.get(c, ""))) for row in rows)) for c in shown}
    lines = ["  ".join(c.ljust(widths[c]) for c in shown)]
    lines += ["  ".join(str(row.get(c, "")).ljust(widths[c]) for c in shown) for row in rows]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _flat(record: dict) -> dict:
    row = {"path": record["path"]}
    for key in ("warning", "error"):
        if key in record:
            row[key] = record[key]
    if "gradcam_files" in record:
        row["gradcam_files"] = ";".join(record["gradcam_files"])
    if "label" not in record:
        return row
    row["label"] = record["label"]
    row["confidence"] = f"{record['probabilities'][record['label']]:.4f}"
    row |= {probability_column(name): f"{p:.6f}" for name, p in record["probabilities"].items()}
    if "subtype" in record:
        row["subtype"] = record["subtype"]
        row["subtype_confidence"] = f"{record['subtype_probabilities'][record['subtype']]:.4f}"
        row |= {probability_column(name): f"{p:.6f}" for name, p in record["subtype_probabilities"].items()}
    return row
