"""Batch classification into a Parquet dataset, in one process or on Ray Data, resumably.

Both engines run the same function, ``classify_rows``, on the same ``Classifier``: a row per input
with its path, file sha256, label, one float64 column per class (``p_<class>``), subtype, error,
warning, the bundle's manifest sha256 and the precision. The output is a Parquet *dataset* (a
directory of part files). Parts are written as work completes, so an interrupted job keeps every
part it wrote, and a rerun with the same ``--out`` skips every input whose (path, sha256) already
has a row there, and appends the rest as new parts.

On Ray, each actor of the pool loads the bundle once: ``load_bundle`` checks every file's sha256
on that worker, and the actor refuses to start if its manifest's sha256 differs from the driver's.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import time
import uuid
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgehisto.bundle.manifest import Bundle
from edgehisto.bundle.outputs import probability_column
from edgehisto.bundle.progress import Progress, no_progress
from edgehisto.errors import EdgehistoError
from edgehisto.runtime.inputs import MAX_TILE_FILE_BYTES, describe_os_error, expand_inputs, read_tile_file

FIXED_COLUMNS = ("path", "sha256", "label", "subtype", "subtype_stage", "error", "warning", "gradcam_files",
                 "bundle_sha256", "precision", "written_at")
PART_ROWS = 256  # rows per Parquet part in the local engine


@dataclass(frozen=True)
class BatchPlan:
    """What a run will do: the inputs, the ones already done, the bundle identity."""

    inputs: list[str]  # every path, in argument order (argument errors included)
    argument_errors: dict[str, str]  # path -> why the argument gave no file
    done: set[tuple[str, str]]  # (path, sha256) pairs that already have a row in the output
    bundle_path: Path
    bundle_sha256: str
    columns: list[str]


def probability_columns(bundle: Bundle) -> list[str]:
    """``p_<class>`` for every class of every stage, in stage order, without repeats."""
    names = []
    for stage in bundle.stages.values():
        names += [probability_column(c) for c in stage.class_names if probability_column(c) not in names]
    return names


def list_sources(sources: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Paths from files, directories, glob patterns and ``.csv``/``.parquet`` lists (column ``path``)."""
    arguments: list[str] = []
    for source in sources:
        suffix = Path(source).suffix.lower()
        if suffix in (".csv", ".parquet") and Path(source).is_file():
            import pyarrow.csv
            import pyarrow.parquet

            table = (pyarrow.csv.read_csv(source, convert_options=pyarrow.csv.ConvertOptions(
                column_types={"path": pyarrow.string()})) if suffix == ".csv" else pyarrow.parquet.read_table(source))
            if "path" not in table.column_names:
                raise EdgehistoError(f"{source} has no 'path' column")
            arguments += [str(p) for p in table.column("path").to_pylist() if p]
        else:
            arguments.append(source)
    expanded = expand_inputs(arguments)
    return [i.path for i in expanded], {i.path: i.error for i in expanded if i.error is not None}


def readable_parts(out_dir: Path, columns: Sequence[str] | None = None) -> tuple[list, list[Path]]:
    """(tables of the readable parts, unreadable parts) of an output dataset.

    A part cut short by an interrupted job cannot be read; its rows are then simply not done, and
    a rerun classifies those inputs again.
    """
    import pyarrow.parquet

    tables, broken = [], []
    for part in sorted(Path(out_dir).glob("*.parquet")) if Path(out_dir).is_dir() else []:
        try:
            tables.append(pyarrow.parquet.read_table(part, columns=columns))
        except Exception:  # noqa: BLE001 - pyarrow raises several kinds for a truncated file
            broken.append(part)
    return tables, broken


def done_pairs(out_dir: Path) -> set[tuple[str, str]]:
    """(path, sha256) of every row already in the output dataset whose file was read.

    A file that was read is done, whatever its row says (decoding the same bytes again gives the
    same answer); a file that could not be read has no sha256 and is tried again.
    """
    done = set()
    for table in readable_parts(out_dir, ["path", "sha256"])[0]:
        done |= {(p, h) for p, h in zip(table.column("path").to_pylist(), table.column("sha256").to_pylist(),
                                        strict=True) if h}
    return done


def plan(sources: Sequence[str], out_dir: Path, model: str | Path | None) -> BatchPlan:
    """List the inputs, read what the output already holds, and identify the bundle."""
    from edgehisto.runtime.registry import resolve_bundle

    bundle = resolve_bundle(model)
    inputs, errors = list_sources(sources)
    columns = [*FIXED_COLUMNS, *probability_columns(bundle)]
    return BatchPlan(inputs, errors, done_pairs(out_dir), bundle.path, bundle.manifest_sha256, columns)


def classify_rows(classifier, paths: Sequence[str], done: set[tuple[str, str]], bundle_sha256: str,
                  columns: Sequence[str], gradcam_dir: Path | None = None,
                  argument_errors: dict[str, str] | None = None) -> list[dict]:
    """One row per path not yet done: read once, hash, classify from those bytes.

    A file that cannot be read or classified is a row with an ``error``; it never fails the batch.
    """
    argument_errors = argument_errors or {}
    named, rows = [], {}
    for path in paths:
        row = dict.fromkeys(columns)
        row.update(path=path, bundle_sha256=bundle_sha256, precision=classifier.precision,
                   written_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds"))
        if path in argument_errors:
            row["error"] = argument_errors[path]
        else:
            try:
                data = read_tile_file(path, MAX_TILE_FILE_BYTES)
            except EdgehistoError as error:
                row["error"] = str(error)
            except OSError as error:
                row["error"] = f"cannot read file: {describe_os_error(error, path)}"
            else:
                row["sha256"] = hashlib.sha256(data).hexdigest()
                if (path, row["sha256"]) in done:
                    continue
                named.append((path, data))
        rows[path] = row
    results = classifier.classify_bytes(named, gradcam=gradcam_dir is not None) if named else []
    if gradcam_dir is not None and results:
        from edgehisto.runtime.outputs import write_gradcam_files

        write_gradcam_files(results, gradcam_dir,
                            {n: s.gradcam_display_peak for n, s in classifier.stages.items()})
    for result in results:
        record, row = result.to_record(), rows[result.path]
        row.update(label=record.get("label"), subtype=record.get("subtype"),
                   subtype_stage=record.get("subtype_stage"), error=record.get("error"),
                   warning=record.get("warning"),
                   gradcam_files=json.dumps(record["gradcam_files"]) if "gradcam_files" in record else None)
        for name, p in {**record.get("probabilities", {}), **record.get("subtype_probabilities", {})}.items():
            row[probability_column(name)] = p
    return [rows[p] for p in paths if p in rows]


def _schema(columns: Sequence[str]):
    import pyarrow

    numeric = probability_column("")
    return pyarrow.schema([(c, pyarrow.float64() if c.startswith(numeric) else pyarrow.string()) for c in columns])


def write_part(rows: list[dict], out_dir: Path, columns: Sequence[str]) -> Path:
    """Write rows as one new Parquet part (temporary name, then renamed: never half a part)."""
    import pyarrow
    import pyarrow.parquet

    out_dir.mkdir(parents=True, exist_ok=True)
    table = pyarrow.Table.from_pylist(rows, schema=_schema(columns))
    final = out_dir / f"part-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:12]}.parquet"
    temporary = out_dir / f".{final.name}.tmp"
    pyarrow.parquet.write_table(table, temporary)
    os.replace(temporary, final)
    return final


@dataclass(frozen=True)
class BatchSummary:
    """What a run did."""

    inputs: int
    skipped: int
    written: int
    failed: int
    seconds: float
    engine: str
    workers: int


def run_local(job: BatchPlan, out_dir: Path, precision: str, gradcam_dir: Path | None = None,
              threads: int | None = None, progress: Progress = no_progress) -> BatchSummary:
    """Classify in this process, writing a part every ``PART_ROWS`` rows."""
    from edgehisto.runtime.classifier import Classifier

    started = time.perf_counter()
    classifier = Classifier(job.bundle_path, precision=precision, threads=threads)
    written = failed = 0
    for start in range(0, len(job.inputs), PART_ROWS):
        chunk = job.inputs[start:start + PART_ROWS]
        rows = classify_rows(classifier, chunk, job.done, job.bundle_sha256, job.columns, gradcam_dir,
                             job.argument_errors)
        if rows:
            write_part(rows, out_dir, job.columns)
        written += len(rows)
        failed += sum(1 for r in rows if r["error"])
        progress(min(start + PART_ROWS, len(job.inputs)), len(job.inputs), "inputs")
    return BatchSummary(len(job.inputs), len(job.inputs) - written, written, failed,
                        time.perf_counter() - started, "local", 1)


class _RayClassifier:
    """A Ray actor: loads and checks the bundle once, then classifies batches of paths."""

    def __init__(self, bundle_path: str, bundle_sha256: str, precision: str, done, columns, gradcam_dir,
                 argument_errors, threads):
        from edgehisto.runtime.classifier import Classifier
        from edgehisto.scale.ray_session import worker_bundle

        bundle = worker_bundle(bundle_path, bundle_sha256)
        self.classifier = Classifier(bundle, precision=precision, threads=threads)
        self.args = (set(done), bundle_sha256, columns, Path(gradcam_dir) if gradcam_dir else None, argument_errors)

    def __call__(self, batch: dict):
        """Rows for a batch of paths, as an Arrow table with the fixed schema."""
        import pyarrow

        done, sha, columns, gradcam_dir, errors = self.args
        rows = classify_rows(self.classifier, [str(p) for p in batch["path"]], done, sha, columns, gradcam_dir,
                             errors)
        return pyarrow.Table.from_pylist(rows, schema=_schema(columns))


def run_ray(job: BatchPlan, out_dir: Path, precision: str, workers: int, address: str | None = None,
            gradcam_dir: Path | None = None, batch_size: int = 64, threads: int = 1) -> BatchSummary:
    """Classify on Ray Data: an actor pool of ``workers`` actors, parts written as blocks finish.

    ``address``: None starts (or joins) a local Ray; ``auto`` or ``ray://host:port`` joins a cluster.
    The bundle path must be readable at the same place on every node (a shared path).
    """
    import logging

    import ray

    from edgehisto.scale.ray_session import ray_session

    started = time.perf_counter()
    todo = list(job.inputs)
    arguments = (str(job.bundle_path), job.bundle_sha256, precision, sorted(job.done), job.columns,
                 str(gradcam_dir) if gradcam_dir else None, job.argument_errors, threads)
    before = set(Path(out_dir).glob("*.parquet")) if Path(out_dir).is_dir() else set()
    with ray_session(workers, address):
        dataset = ray.data.from_items([{"path": p} for p in todo],
                                      override_num_blocks=max(1, len(todo) // batch_size))
        with warnings.catch_warnings():
            # max_restarts=0: Ray Data keeps every actor pool's constructor in the object store, and with
            # restarts allowed Ray logs an error line about it on every run (ray-project/ray#57733), which
            # users read as a failure. Without restarts a crashed worker fails the job, and a rerun
            # classifies only the inputs that have no row yet. Ray 2.60 names no other way to set it.
            warnings.simplefilter("ignore", DeprecationWarning)
            results = dataset.map_batches(_RayClassifier, batch_size=batch_size, batch_format="numpy",
                                          compute=ray.data.ActorPoolStrategy(size=workers),
                                          fn_constructor_args=arguments, num_cpus=1, max_restarts=0)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # Ray Data resets it when it starts
        results.write_parquet(str(out_dir), min_rows_per_file=batch_size)
    new_parts = set(Path(out_dir).glob("*.parquet")) - before
    written = failed = 0
    if new_parts:
        import pyarrow.parquet

        for part in new_parts:
            table = pyarrow.parquet.read_table(part, columns=["error"])
            written += table.num_rows
            failed += sum(1 for e in table.column("error").to_pylist() if e)
    return BatchSummary(len(todo), len(todo) - written, written, failed, time.perf_counter() - started, "ray",
                        workers)


def read_results(out_dir: Path) -> list[dict]:
    """Every row of the readable parts of an output dataset, oldest first (for checks and reports)."""
    rows = [row for table in readable_parts(out_dir)[0] for row in table.to_pylist()]
    return sorted(rows, key=lambda row: row["written_at"] or "")


def latest_rows(out_dir: Path) -> dict[str, dict]:
    """The newest row of each path."""
    return {row["path"]: row for row in read_results(out_dir)}


def to_csv(out_dir: Path, csv_path: Path, columns: Iterable[str]) -> Path:
    """All rows of the dataset as one CSV file."""
    import csv

    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(read_results(out_dir))
    return csv_path
