"""``edgehisto bench [BUNDLE...] [--data DIR] [--out bench-output] [--tuning-variants DIR]``: variants side by side."""

from __future__ import annotations

import os
from pathlib import Path

import click


@click.command("bench")
@click.argument("bundles", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", "data_dir", default=None, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Where labelled data lives: a bundle's held-out tiles are used if found there, else every tile.")
@click.option("--out", "out_dir", default=Path("bench-output"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--repeats", default=50, show_default=True, type=click.IntRange(min=3),
              help="Timed repetitions per latency measurement.")
@click.option("--limit", default=512, show_default=True, type=click.IntRange(min=8),
              help="Labelled tiles used for accuracy (evenly subsampled).")
@click.option("--tuning-variants", "variants_dir", default=None,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Also measure the onnxruntime/export choices for the first bundle against the variants "
                   "the export-variants command wrote into this directory (ort_tuning.{json,md}).")
def bench(bundles: tuple[Path, ...], data_dir: Path | None, out_dir: Path, repeats: int, limit: int,
          variants_dir: Path | None) -> None:
    """Benchmark Keras, ONNX and TFLite, fp32 and int8, for each bundle (default: the embedded model)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgehisto.bench.report import write_reports
    from edgehisto.bench.run import BenchConfig, run_bench
    from edgehisto.runtime.registry import resolve_bundle

    chosen = list(bundles) or [resolve_bundle(None).path]

    def progress(line: str) -> None:
        click.echo(line, err=True)

    if variants_dir is not None:  # refuse variants of another bundle before the long bench run
        from edgehisto.bench.ort_tuning import read_variants

        read_variants(variants_dir, resolve_bundle(chosen[0]))
    report = run_bench(chosen, data_dir, BenchConfig(repeats=repeats, limit=limit), log=progress)
    for path in write_reports(report, out_dir):
        click.echo(f"wrote {path}")
    missed = [t for b in report["bundles"] for t in b["targets"] if not t["met"]]
    for t in missed:
        click.echo(f"target missed: {t['target']}: {t['value']:.3g} (target {t['rule']} {t['threshold']})", err=True)
    if variants_dir is not None:
        from edgehisto.bench.ort_tuning import tune_onnxruntime
        from edgehisto.bench.tuning_report import write_tuning_report

        result = tune_onnxruntime(chosen[0], variants_dir, data_dir, repeats=repeats, limit=limit, log=progress)
        for path in write_tuning_report(result, out_dir):
            click.echo(f"wrote {path}")
