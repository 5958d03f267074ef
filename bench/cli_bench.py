"""``edgehisto bench [BUNDLE...] [--data DIR] [--out bench-output] [--tuning-variants DIR]``: variants side by side."""

from __future__ import annotations

import os
from pathlib import Path

import click


@click.command("bench")
@click.argument("bundles", nargs=-1, metavar="[MODEL]...")
@click.option("--data", "data_dir", default=None, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Where labelled data lives: a bundle's held-out tiles are used if found there, else where "
                   "its manifest says they are, else every tile of DIR.")
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
def bench(bundles: tuple[str, ...], data_dir: Path | None, out_dir: Path, repeats: int, limit: int,
          variants_dir: Path | None) -> None:
    """Benchmark Keras, ONNX and TFLite, fp32 and int8, for each bundle (default: every embedded model).

    MODEL is an embedded model's name (idc, breakhis) or a bundle directory. Keras and TFLite rows
    need the bundle's reference files; a runtime bundle ships ONNX only, and its report says so.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgehisto.bench.report import write_reports
    from edgehisto.bench.run import BenchConfig, run_bench
    from edgehisto.runtime.registry import DEFAULT_MODEL, embedded_bundles, resolve_bundle

    embedded = sorted(embedded_bundles().items(), key=lambda item: item[0] != DEFAULT_MODEL)  # the default first
    chosen = [resolve_bundle(b).path for b in bundles] or [path for _, path in embedded]

    def progress(line: str) -> None:
        click.echo(line, err=True)

    if variants_dir is not None:  # refuse variants of another bundle before the long bench run
        from edgehisto.bench.ort_tuning import read_variants

        read_variants(variants_dir, resolve_bundle(chosen[0]))
    report = run_bench(chosen, data_dir, BenchConfig(repeats=repeats, limit=limit), log=progress)
    for path in write_reports(report, out_dir):
        click.echo(f"wrote {path}")
    targets = [t for b in report["bundles"] for t in b["targets"]]
    targets += [report["multitask_vs_hierarchy"]["target"]] if "multitask_vs_hierarchy" in report else []
    for t in (t for t in targets if t["verdict"] != "met"):
        value = "—" if t["value"] is None else f"{t['value']:.3g}"
        click.echo(f"target {t['verdict']} ({t['isa']}): {t['target']}: {value} (target {t['rule']} "
                   f"{t['threshold']}{', rounds holding ' + t['rounds'] if 'rounds' in t else ''})", err=True)
    if variants_dir is not None:
        from edgehisto.bench.ort_tuning import tune_onnxruntime
        from edgehisto.bench.tuning_report import write_tuning_report

        result = tune_onnxruntime(chosen[0], variants_dir, data_dir, repeats=repeats, limit=limit, log=progress)
        for path in write_tuning_report(result, out_dir):
            click.echo(f"wrote {path}")
