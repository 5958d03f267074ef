"""Bench outputs: ``bench.json`` (machine-readable), ``bench.md`` (tables) and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path


def _fmt(value, digits=2):
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(report: dict) -> str:
    """The bench report as Markdown: machine, per-stage variant table, process table, targets."""
    machine = report["machine"]
    lines = ["# edgehisto bench", "",
             f"Machine: {machine['cpu']}, {machine['cores']} cores, AVX-512 VNNI: {machine['avx512_vnni']}; "
             f"{machine['platform']}; Python {machine['python']}.",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()) + ".", ""]
    for bundle in report["bundles"]:
        lines += [f"## {bundle['bundle']} ({bundle['task']}, {bundle['n_tiles']} labelled tiles "
                  f"from {bundle['data']})", ""]
        for stage, rows in bundle["stages"].items():
            lines += [f"### stage `{stage}` (batch 1 latency in ms: median / p95)", "",
                      "| variant | size MB | accuracy | balanced acc | macro-F1 | agreement w/ Keras | "
                      "latency, all threads | latency, 1 thread | tiles/s (batch) | Grad-CAM cost |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
            for kind, r in rows.items():
                one = r.get("latency_1_thread")
                lines.append(
                    f"| {kind} | {_fmt(r['size_mb'])} | {_fmt(r['accuracy'], 4)} | {_fmt(r['balanced_accuracy'], 4)} | "
                    f"{_fmt(r['macro_f1'], 4)} | {_fmt(r['agreement_with_keras'], 4)} | "
                    f"{_fmt(r['latency_all_threads']['median_ms'])} / {_fmt(r['latency_all_threads']['p95_ms'])} | "
                    f"{(_fmt(one['median_ms']) + ' / ' + _fmt(one['p95_ms'])) if one else '—'} | "
                    f"{_fmt(r['throughput_tiles_per_s'], 0)} | "
                    f"{(_fmt(r['gradcam_cost_ratio']) + 'x') if 'gradcam_cost_ratio' in r else '—'} |")
            lines.append("")
        if "routed" in bundle:
            lines += ["### routed end to end (batch 1)", "",
                      "| variant | accuracy (8-class) | agreement w/ Keras | latency ms median / p95 |",
                      "|---|---|---|---|"]
            for kind, r in bundle["routed"].items():
                lat = r["latency_all_threads"]
                lines.append(f"| {kind} | {_fmt(r['accuracy'], 4)} | {_fmt(r['agreement_with_keras'], 4)} | "
                             f"{_fmt(lat['median_ms'])} / {_fmt(lat['p95_ms'])} |")
            lines.append("")
        lines += ["### whole process (median of runs)", "", "| command | wall s | peak RSS MB |", "|---|---|---|"]
        for name, p in bundle["process"].items():
            lines.append(f"| {name} | {_fmt(p['seconds'])} | {_fmt(p['peak_rss_mb'], 0)} |")
        lines += ["", "### targets", "", "| target | measured | target | met |", "|---|---|---|---|"]
        for t in bundle["targets"]:
            lines.append(f"| {t['target']} | {_fmt(t['value'])} | {t['rule']} {t['threshold']} | "
                         f"{'yes' if t['met'] else '**no**'} |")
        lines.append("")
    return "\n".join(lines)


def plots(report: dict, out_dir: Path) -> list[Path]:
    """Latency vs accuracy per variant and model size bars, one PNG each per bundle stage."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    written = []
    for index, bundle in enumerate(report["bundles"]):
        for stage, rows in bundle["stages"].items():
            fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
            for kind, r in rows.items():
                left.scatter(r["latency_all_threads"]["median_ms"], 100 * r["accuracy"], s=60)
                left.annotate(kind, (r["latency_all_threads"]["median_ms"], 100 * r["accuracy"]),
                              textcoords="offset points", xytext=(5, 4), fontsize=8)
            left.set_xscale("log")
            left.set_xlabel("batch-1 latency, median ms (log)")
            left.set_ylabel("accuracy %")
            left.set_title(f"{stage}: latency vs accuracy")
            right.bar(list(rows), [r["size_mb"] for r in rows.values()], color="tab:purple")
            right.set_ylabel("MB")
            right.set_title(f"{stage}: model file size")
            right.tick_params(axis="x", rotation=30)
            fig.tight_layout()
            path = out_dir / f"bench_{index}_{stage}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
    return written


def write_reports(report: dict, out_dir: Path) -> list[Path]:
    """Write bench.json, bench.md and the plots; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "bench.md").write_text(markdown(report) + "\n")
    return [out_dir / "bench.json", out_dir / "bench.md", *plots(report, out_dir)]
