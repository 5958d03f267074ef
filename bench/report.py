"""Bench outputs: ``bench.json`` (machine-readable), ``bench.md`` (tables) and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

from edgehisto.bench.machine import installed

METHOD = ("Latency: batch 1, median / p95 ms. Every latency in this report (and in `ort_tuning.md`) is "
          "taken with one method: the calls of a table are timed together in rotating rounds (wait until "
          "idle workers stop spinning, one untimed call, a burst of back-to-back calls), so load from other "
          "processes hits them alike. A ratio target is **met** when the median ratio beats it by more than "
          "5% and at least 80% of the rounds beat it too, **missed** when the opposite holds, and **within "
          "noise** otherwise. Verdicts hold for this machine's ISA class only.")


def _fmt(value, digits=2):
    return "—" if value is None else f"{value:.{digits}f}"


def _lat(stats: dict | None) -> str:
    return "—" if not stats else f"{_fmt(stats['median_ms'])} / {_fmt(stats['p95_ms'])}"


def _header(report: dict) -> list[str]:
    machine = report["machine"]
    peaks = report["gemm_peaks"]
    if peaks is None:
        limit = ['The physical limit was not measured: it needs onnx (pip install "edgehisto[train]").', ""]
    else:
        limit = [f"Attainable GEMM throughput here (onnxruntime, {peaks['int8']['m']}^3, all cores): int8 "
                 f"(MatMulInteger, U8S8) {_fmt(peaks['int8']['gops'], 1)} G op/s, fp32 (MatMul) "
                 f"{_fmt(peaks['fp32']['gops'], 1)} G op/s (a multiply-add counts 2), timed alone at the start. "
                 "Each fraction of peak below divides by the same GEMM timed in the same rounds as that backbone.",
                 ""]
    return ["# edgehisto bench", "",
            f"Machine: {machine['cpu']}, **ISA class {machine['isa']}** (flags: {', '.join(machine['isa_flags'])}), "
            f"{machine['cores']} cores; {machine['platform']}; Python {machine['python']}. Load average (1/5/15 min) "
            f"before {machine['load_average']}, after {report.get('load_average_after')}.",
            "Versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()) + ".", "", METHOD, "",
            *limit]


def _stage_table(stage: str, rows: dict) -> list[str]:
    lines = [f"### stage `{stage}`", "",
             "| variant | size MB | accuracy | balanced acc | agreement w/ Keras | agreement w/ ONNX fp32 | "
             "latency, all threads | latency, 1 thread | tiles/s (batch) | Grad-CAM cost |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for kind, r in rows.items():
        if "skipped" in r:
            lines.append(f"| {kind} | not run: {r['skipped']} |||||||||")
            continue
        lines.append(
            f"| {kind} | {_fmt(r['size_mb'])} | {_fmt(r['accuracy'], 4)} | {_fmt(r['balanced_accuracy'], 4)} | "
            f"{_fmt(r['agreement_with_keras'], 4)} | {_fmt(r['agreement_with_onnx_fp32'], 4)} | "
            f"{_lat(r['latency_all_threads'])} | {_lat(r.get('latency_1_thread'))} | "
            f"{_fmt(r['throughput_tiles_per_s'], 0)} | "
            f"{(_fmt(r['gradcam_cost_ratio']) + 'x') if 'gradcam_cost_ratio' in r else '—'} |")
    notes = []
    paired = rows.get("onnx_int8", {}).get("latency_vs_tflite")
    if paired:
        notes.append(f"ONNX int8 vs TFLite int8, timed alone together: {_lat(paired)} vs "
                     f"{_lat(rows['tflite_int8']['latency_vs_onnx'])} ms (the verdict's numbers).")
    paired = rows.get("onnx_int8", {}).get("latency_vs_keras")
    if paired:
        notes.append(f"Keras `predict` is timed in its own table against ONNX int8 ({_lat(paired)} ms there); "
                     "the other rows in one table.")
    if notes:
        lines += ["", " ".join([*notes, "Throughput (batch) is timed variant after variant."])]
    return [*lines, ""]


def _roofline_table(bundle: dict) -> list[str]:
    lines = ["### the physical limit (backbone only, batch 1)", "",
             "| stage | GMAC | precision | backbone ms | achieved G op/s | GEMM peak G op/s (same rounds) | "
             "fraction of peak | "
             "top operators (ms per run, share) |",
             "|---|---|---|---|---|---|---|---|"]
    for stage, roof in bundle["roofline"].items():
        if "skipped" in roof:
            lines.append(f"| {stage} | not measured: {roof['skipped']} |||||||")
            continue
        if "same_as" in roof:
            lines.append(f"| {stage} | the backbone of `{roof['same_as']}` (shared) |||||||")
            continue
        for precision in ("fp32", "int8"):
            r = roof[precision]
            top = "; ".join(f"{o['op']} ×{o['nodes']} {_fmt(o['ms_per_run'])} ({100 * o['share']:.0f}%)"
                            for o in r["profile"]["ops"][:5])
            lines.append(f"| {stage} | {_fmt(roof['gmac'], 3)} | {precision} | "
                         f"{_fmt(r['backbone_latency']['median_ms'])} | {_fmt(r['achieved_gops'], 1)} | "
                         f"{_fmt(r['peak_gops'], 1)} | "
                         f"{100 * r['fraction_of_peak']:.0f}% | {top} |")
    return [*lines, ""]


def _routed_table(routed: dict) -> list[str]:
    lines = ["### routed end to end (batch 1)", "",
             "| variant | accuracy (end to end) | agreement w/ Keras | stages run | classify from tensor | "
             "classify from image file | the stages' session runs only |", "|---|---|---|---|---|---|---|"]
    for kind, r in routed.items():
        if "skipped" in r:
            lines.append(f"| {kind} | not run: {r['skipped']} ||||||")
            continue
        lines.append(f"| {kind} | {_fmt(r['accuracy'], 4)} | {_fmt(r.get('agreement_with_keras'), 4)} | "
                     f"{', '.join(r.get('stages_ran', [])) or '—'} | {_lat(r.get('latency_all_threads'))} | "
                     f"{_lat(r.get('latency_file'))} | {_lat(r.get('latency_stages_only'))} |")
    paired = routed.get("onnx_int8", {}).get("latency_vs_keras")
    if paired:
        lines += ["", f"Keras is timed in its own table against ONNX int8 from the tensor ({_lat(paired)} ms there)."]
    return [*lines, ""]


def _levers_table(levers: dict | None) -> list[str]:
    if not levers:
        return []
    decode = levers["decode"]
    lines = ["### levers measured", "",
             f"Decoding the image ({decode['size'][1]}x{decode['size'][0]}, {decode['bytes'] / 1e3:.0f} kB): "
             f"{_fmt(decode['decode_ms'])} ms; resize + normalise: {_fmt(decode['resize_normalise_ms'])} ms.", "",
             "| entry backbone | session creation as shipped (s) | from a copy pre-optimised at EXTENDED, "
             "re-optimised at ALL (s) | "
             "max abs activation difference |", "|---|---|---|---|"]
    for row in levers["session_creation"]:
        lines.append(f"| {row['precision']} | {_fmt(row['shipped_s'], 3)} | {_fmt(row['pre_optimised_extended_s'], 3)}"
                     f" | {row['max_abs_activation_diff']:.2g} |")
    return [*lines, ""]


def _targets_table(targets: list[dict]) -> list[str]:
    lines = ["### targets", "", "| target | measured | target | verdict | rounds holding | note |",
             "|---|---|---|---|---|---|"]
    for t in targets:
        verdict = t["verdict"] if t["verdict"] == "met" else f"**{t['verdict']}**"
        lines.append(f"| {t['target']} | {_fmt(t['value'], 3)} | {t['rule']} {t['threshold']} | {verdict} "
                     f"({t['isa']}) | {t.get('rounds', '—')} | {t.get('note', '')} |")
    return [*lines, ""]


def markdown(report: dict) -> str:
    """The bench report as Markdown: machine and method, then per bundle its tables and verdicts."""
    lines = _header(report)
    for skipped in report.get("skipped_bundles", []):
        lines += [f"**Not benched: {skipped['bundle']}: {skipped['why']}**", ""]
    if not installed("matplotlib"):
        lines += ['No PNG plots: they need matplotlib (pip install "edgehisto[train]").', ""]
    for bundle in report["bundles"]:
        lines += [f"## {bundle['bundle']} ({bundle['task']}, arch {bundle.get('arch') or 'single'}; "
                  f"{bundle['n_tiles']} labelled tiles from {bundle['data']})", ""]
        for stage, rows in bundle["stages"].items():
            lines += _stage_table(stage, rows)
        lines += _roofline_table(bundle)
        if "routed" in bundle:
            lines += _routed_table(bundle["routed"])
        lines += _levers_table(bundle.get("levers"))
        lines += ["### whole process (median of runs)", "", "| command | wall s | peak RSS MB |", "|---|---|---|"]
        for name, p in bundle["process"].items():
            lines.append(f"| {name} | {_fmt(p['seconds'])} | {_fmt(p['peak_rss_mb'], 0)} |")
        lines += ["", *_targets_table(bundle["targets"])]
    comparison = report.get("multitask_vs_hierarchy")
    if comparison:
        lat = comparison["latency"]
        lines += ["## multitask vs three-model hierarchy (routed, int8, interleaved)", "",
                  f"Hierarchy {comparison['bundles']['hierarchy']}: {_lat(lat['hierarchy'])} ms; multitask "
                  f"{comparison['bundles']['multitask']}: {_lat(lat['multitask'])} ms.", "",
                  *_targets_table([comparison["target"]])]
    return "\n".join(lines)


def plots(report: dict, out_dir: Path) -> list[Path]:
    """Per bundle stage: latency vs accuracy and file sizes; per bundle: the roofline bars.

    Nothing is drawn without matplotlib (a runtime-only install): the tables say it all.
    """
    try:
        import matplotlib
    except ModuleNotFoundError:
        return []

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    written = []
    for index, bundle in enumerate(report["bundles"]):
        for stage, rows in bundle["stages"].items():
            measured = {k: r for k, r in rows.items() if "skipped" not in r and r["accuracy"] is not None}
            if not measured:
                continue
            fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
            for position, (kind, r) in enumerate(measured.items()):
                latency, accuracy = r["latency_all_threads"]["median_ms"], 100 * r["accuracy"]
                left.scatter(latency, accuracy, s=60)
                # labels alternate above and below their point so that equal accuracies stay legible
                left.annotate(kind, (latency, accuracy), textcoords="offset points",
                              xytext=(6, 8 if position % 2 == 0 else -14), fontsize=8)
            accuracies = [100 * r["accuracy"] for r in measured.values()]
            middle = (max(accuracies) + min(accuracies)) / 2
            # at least a 20-point span: a 0.2-point axis makes one tile's difference look like a gap
            half = max(10.0, (max(accuracies) - min(accuracies)) / 2 + 3)
            left.set_ylim(max(0.0, middle - half), min(100.0, middle + half) + 1)
            left.set_xscale("log")
            left.set_xlabel("batch-1 latency, median ms (log)")
            left.set_ylabel(f"accuracy % ({measured[next(iter(measured))]['n_labelled']} tiles)")
            left.set_title(f"{stage}: latency vs accuracy")
            left.grid(alpha=0.3)
            right.bar(list(measured), [r["size_mb"] for r in measured.values()], color="tab:purple")
            right.set_ylabel("MB")
            right.set_title(f"{stage}: model file size")
            right.tick_params(axis="x", rotation=30)
            fig.tight_layout()
            path = out_dir / f"bench_{index}_{stage}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
        if any("int8" in roof for roof in bundle["roofline"].values()):
            written.append(_roofline_plot(plt, report, bundle, out_dir / f"bench_{index}_roofline.png"))
    return written


def _roofline_plot(plt, report: dict, bundle: dict, path: Path) -> Path:
    """Achieved backbone G op/s per stage and precision, against this machine's GEMM peaks."""
    fig, ax = plt.subplots(figsize=(7, 4))
    stages = [s for s, roof in bundle["roofline"].items() if "int8" in roof]
    width = 0.38
    for offset, (precision, colour) in enumerate((("fp32", "tab:blue"), ("int8", "tab:orange"))):
        values = [bundle["roofline"][s][precision]["achieved_gops"] for s in stages]
        xs = [i + (offset - 0.5) * width for i in range(len(stages))]
        ax.bar(xs, values, width, color=colour, label=f"{precision} backbone")
        peak = max(bundle["roofline"][s][precision]["peak_gops"] for s in stages)
        ax.axhline(peak, color=colour, linestyle="--", label=f"{precision} GEMM peak {peak:.0f} (same rounds)")
    ax.set_xticks(range(len(stages)), stages)
    ax.set_ylim(0, 1.15 * max(max(bundle["roofline"][s][p]["peak_gops"], bundle["roofline"][s][p]["achieved_gops"])
                               for s in stages for p in ("fp32", "int8")))
    ax.set_ylabel("G op/s (multiply-add = 2)")
    ax.set_title(f"{bundle['bundle']}: achieved vs attainable ({report['machine']['isa']})", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_reports(report: dict, out_dir: Path) -> list[Path]:
    """Write bench.json, bench.md and the plots; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "bench.md").write_text(markdown(report) + "\n")
    return [out_dir / "bench.json", out_dir / "bench.md", *plots(report, out_dir)]
