"""``summary.md``: an evaluation report's key numbers in Markdown tables, then every figure."""

from __future__ import annotations

from pathlib import Path


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def write_summary(report: dict, path: Path) -> Path:
    """A short Markdown summary: key numbers in tables, then every figure, linked relatively."""
    k, results = report["settings"]["top_k_percent"], report["results"]
    lines = [f"# Evaluation of `{report['bundle']}`", "",
             f"{report['n_tiles']} tiles of `{report['data']}` (task `{report['task']}`): {report['scope']}. "
             "onnxruntime CPU. Grad-CAM maps: " + "; ".join(
                 f"{r['stage']} shows {r['map_meaning']}"
                 for r in {r["stage"]: r for r in results.values() if "map_meaning" in r}.values())
             + ". All numbers: [evaluation.json](evaluation.json).",
             *([f"No tiles were routed to: {', '.join(report['stages_without_tiles'])}."]
               if report["stages_without_tiles"] else []), "",
             "## Classification", "",
             "| stage | precision | n | accuracy | balanced accuracy | recall per class |",
             "|---|---|---:|---:|---:|---|"]
    for r in results.values():
        m = r["metrics"]
        recall = ", ".join(f"{name} {_num(c['recall'])}" for name, c in m["per_class"].items())
        lines.append(f"| {r['stage']} | {r['precision']} | {m['n']} | {_num(m['accuracy'])} | "
                     f"{_num(m['balanced_accuracy'])} | {recall} |")
    lines += ["", "## Grad-CAM localisation (tiles with lesion masks)", "",
              "Pointing game: the map's peak lies in the lesion. Energy share: the map's share inside "
              "the lesion. Chance: the lesion's share of the tile, which a uniform map scores on both. "
              "*correct*: correctly classified tiles only.", ""]
    rows = [(r, name, c) for r in results.values() for name, c in r.get("localisation", {}).items()]
    if rows:
        lines += ["| stage | precision | true class | n | pointing game | energy share | chance | "
                  "pointing game (correct) | energy share (correct) |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['stage']} | {r['precision']} | {name} | {c['n']} | {_num(c['pointing_game'])} | "
                  f"{_num(c['energy_share'])} | {_num(c['lesion_area_share'])} | "
                  f"{_num(c['correct']['pointing_game'])} | {_num(c['correct']['energy_share'])} |"
                  for r, name, c in rows]
    else:
        lines.append("No evaluated tile has a lesion mask, so there is nothing to localise.")
    lines += ["", "## Deletion test", "",
              f"Drop in the probability of the class a map explains (the positive class for a sigmoid "
              f"stage, else the predicted class) when the map's top {k:g}% pixels are set to the background "
              f"value, against {k:g}% random pixels: a map that points at the evidence costs more than chance. "
              "A map that costs less than random is flagged: it does not show what the score rests on.", "",
              f"| stage | precision | n | drop, top {k:g}% | drop, random {k:g}% | tiles where top beats random |",
              "|---|---|---:|---:|---:|---:|"]
    for r in (r for r in results.values() if "deletion" in r):
        d = r["deletion"]
        worse = d["mean_drop_top_k"] is not None and d["mean_drop_random"] is not None \
            and d["mean_drop_top_k"] < d["mean_drop_random"]
        lines.append(f"| {r['stage']} | {r['precision']} | {d['n']} | {_num(d['mean_drop_top_k'], 4)}"
                     f"{' **(worse than random)**' if worse else ''} | "
                     f"{_num(d['mean_drop_random'], 4)} | {_num(d['share_top_k_beats_random'])} |")
    lines += ["", "## Figures"]
    for stem, r in results.items():
        files = r["files"]
        links = f"[metrics]({files['metrics']})" + (
            f" · [per-tile predictions]({files['predictions']})" if "predictions" in files else "")
        lines += ["", f"### {stem}", "", links, "", f"![{stem} confusion matrix]({files['confusion']})", ""]
        lines += [line for panel in files.get("panels", []) for line in (f"![{Path(panel).stem}]({panel})", "")]
    failures = {p: f for p, f in report["failures"].items() if f}
    if failures:
        lines += ["", "## Failures", ""]
        lines += [f"- {p}: {len(f)} (first: `{f[0]['path']}`: {f[0]['error']})" for p, f in failures.items()]
    path.write_text("\n".join(lines) + "\n")
    return path
