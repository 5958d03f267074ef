"""The tuning report: ``ort_tuning.json`` and ``ort_tuning.md`` (one table and one conclusion per factor)."""

from __future__ import annotations

import json
from pathlib import Path

from edgehisto.bench.ort_tuning import short


def _cell(value) -> str:
    if isinstance(value, bool):
        return "**yes**" if value else ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def tuning_markdown(result: dict) -> str:
    """The tuning report as Markdown: one table and one derived conclusion per factor."""
    machine = result["machine"]
    lines = [f"# onnxruntime tuning: {result['bundle']} (stage `{result['stage']}`, batch 1)", "",
             f"Machine: {machine['cpu']}, {machine['cores']} cores; onnxruntime "
             f"{machine['versions'].get('onnxruntime')}. Load average (1/5/15 min) at start "
             f"{', '.join(f'{v:.2f}' for v in result['loadavg_start'])}, at end "
             f"{', '.join(f'{v:.2f}' for v in result['loadavg_end'])}.",
             f"Tiles: {result['tiles']['n']} from {result['tiles']['source']}. Variants exported beforehand by "
             f"the `export-variants` command into {result['variants']['dir']}; their int8 calibration: "
             f"{result['variants']['calibration']['n']} images from {result['variants']['calibration']['source']}. "
             f"Latency: backbone + head in ms, median / p95 of {result['repeats']} samples per variant; a table's "
             "variants are timed in rotating rounds (wait for idle workers to stop spinning, one untimed "
             "call, a back-to-back burst).",
             "Runtime session settings (chosen): "
             + ", ".join(f"{k}={short(v)}" for k, v in result["runtime_settings"].items()) + ".", ""]
    lines += [f"**{note}**" for note in result["notes"]] + ([""] if result["notes"] else [])
    for factor in result["factors"].values():
        skip = ("variant", "chosen", "median_ms", "p95_ms", "round_medians_ms")
        columns = [c for c in factor["rows"][0] if c not in skip]
        columns = ["variant", *columns, "median_ms", "p95_ms", "chosen"]
        lines += [f"## {factor['title']}", "", "| " + " | ".join(columns) + " |",
                  "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for row in factor["rows"]]
        load = factor["loadavg_before"][0], factor["loadavg_after"][0]
        lines += ["", f"Conclusion: {factor['conclusion']}. (1-min load {load[0]:.2f} -> {load[1]:.2f})", ""]
    return "\n".join(lines)


def write_tuning_report(result: dict, out_dir: Path) -> list[Path]:
    """Write ``ort_tuning.json`` and ``ort_tuning.md`` into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "ort_tuning.json", out_dir / "ort_tuning.md"]
    paths[0].write_text(json.dumps(result, indent=2) + "\n")
    paths[1].write_text(tuning_markdown(result))
    return paths
