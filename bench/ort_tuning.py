"""The measurements behind the runtime's onnxruntime and export choices, for a bundle's entry stage.

Each factor (session options, int8 quantisation, input layout, ONNX vs TFLite int8) is one table of
variants of the classify path (backbone + head, batch 1), timed together in rotating rounds so load
from other processes hits them alike: read rows as ratios within a table, next to the load averages.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from edgehisto.bundle.manifest import Bundle, StageSpec, load_bundle
from edgehisto.bundle.preprocess import normalize
from edgehisto.errors import EdgehistoError
from edgehisto.runtime.litert import probabilities
from edgehisto.runtime.sessions import SPINNING, make_session
from edgehisto.runtime.timing import interleaved

LEVELS = ("ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL")
SESSION_SWEEPS = {  # each sweep changes one setting of the runtime's current session options
    "threads": [{"intra": n} for n in (0, 1, 2)],
    "spinning": [{"spin": "1"}, {"spin": "0"}],
    "optimization": [{"level": level} for level in LEVELS],
    "execution": [{"mode": "ORT_SEQUENTIAL", "inter": 1}, {"mode": "ORT_PARALLEL", "inter": 1},
                  {"mode": "ORT_PARALLEL", "inter": 2}],
}
QUANT_VARIANTS = {  # one factor at a time away from export's default (QDQ, U8S8, per-channel, MinMax)
    "QDQ U8S8 per-channel MinMax": {}, "QOperator": {"format": "QOperator"}, "per-tensor": {"per_channel": False},
    "activations QInt8 (S8S8)": {"activation_type": "QInt8"}, "Entropy calibration": {"calibration_method": "Entropy"},
    "Percentile calibration": {"calibration_method": "Percentile"},
}
# A difference counts only if it is >= 5% and the faster variant wins >= 80% of the rounds: on this
# shared 2-core machine two identical graphs measured 2.5x apart in one table when load bursts hit.
NOISE_RATIO, CONSISTENT_ROUNDS = 1.05, 0.8
NOISE_NOTE = "RANDOM NOISE used instead of tiles: agreement and probability numbers are MEANINGLESS"


def runtime_settings(model: Path) -> dict:
    """The session settings the runtime really uses, read back from a ``make_session`` session."""
    used = make_session(model).get_session_options()
    try:
        spin = used.get_session_config_entry(SPINNING)
    except RuntimeError:  # not set: onnxruntime's default, spinning on
        spin = "1"
    return {"intra": used.intra_op_num_threads, "inter": used.inter_op_num_threads,
            "level": used.graph_optimization_level.name, "mode": used.execution_mode.name, "spin": spin}


class ClassifyPath:
    """Backbone + head sessions of one stage: what ``classify`` runs per tile (``nchw``: transpose input)."""

    def __init__(self, backbone: Path, head: Path, output: str, settings: dict, nchw: bool = False):
        self.backbone, self.head = make_session(backbone, **settings), make_session(head, **settings)
        self.output, self.nchw = output, nchw

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.nchw:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return self.run_prepared(x)

    def run_prepared(self, x: np.ndarray) -> np.ndarray:
        acts = self.backbone.run(None, {"image": x})[0]
        return probabilities(self.head.run(["probabilities"], {"activations": acts})[0], self.output)

    def predict(self, x: np.ndarray, batch: int = 32) -> np.ndarray:
        return np.concatenate([self(x[i:i + batch]) for i in range(0, len(x), batch)])


def compare(slow: dict, fast: dict) -> str:
    """"N.NNx, <fast> faster in k/n rounds" plus a verdict: consistent, or within noise."""
    ratio = slow["median_ms"] / fast["median_ms"]
    wins = sum(f < s for f, s in zip(fast["round_medians_ms"], slow["round_medians_ms"], strict=True))
    rounds = len(fast["round_medians_ms"])
    verdict = "consistent" if ratio >= NOISE_RATIO and wins >= CONSISTENT_ROUNDS * rounds else "within noise"
    return f"{ratio:.2f}x, {fast['variant']} faster in {wins}/{rounds} rounds: {verdict}"


def conclude(rows: list[dict]) -> str:
    """One line from the numbers: the fastest variant against the chosen one (plus agreement range)."""
    ranked = sorted(rows, key=lambda r: r["median_ms"])
    fastest, chosen = ranked[0], next((r for r in rows if r["chosen"]), None)
    text = f"fastest: {fastest['variant']} ({fastest['median_ms']:.3g} ms)"
    if chosen is fastest and len(ranked) > 1:
        text = (f"fastest: {fastest['variant']} (current, {fastest['median_ms']:.3g} ms); vs runner-up "
                f"{ranked[1]['variant']}: {compare(ranked[1], fastest)}")
    elif chosen is not None:
        text += f" vs current {chosen['variant']} ({chosen['median_ms']:.3g} ms): {compare(chosen, fastest)}"
    if chosen is not None and "top1_agreement" in chosen:
        agreements = [r["top1_agreement"] for r in rows]
        text += (f"; top-1 agreement with fp32 {min(agreements):.3f}-{max(agreements):.3f} "
                 f"(current {chosen['top1_agreement']:.3f})")
    return text


def _short(value) -> str:
    return value.removeprefix("ORT_") if isinstance(value, str) else str(value)


@dataclass
class Tuning:
    """What every factor shares: the stage under test, the runtime's session settings, the timing budget."""

    bundle: Bundle
    stage: StageSpec
    current: dict
    repeats: int
    log: Callable[[str], None]

    def classify_path(self, backbone: str | Path, nchw: bool = False, **override) -> ClassifyPath:
        """``backbone``: "fp32"/"int8" (the bundle's) or a file; ``override``: session settings."""
        if backbone in ("fp32", "int8"):
            backbone = self.bundle.file(self.stage.backbone(backbone))
        return ClassifyPath(backbone, self.bundle.file(self.stage.files["head"]), self.stage.output,
                            {**self.current, **override}, nchw)

    def measure(self, title: str, rows: list[dict], calls: dict, conclusion=conclude) -> dict:
        """Time one factor's variants together; rows carry "variant" and "chosen", and get the latencies."""
        self.log(f"  tuning: {title} ({len(rows)} variants x {self.repeats} samples)")
        before = os.getloadavg()
        stats = interleaved(calls, self.repeats)
        for row in rows:
            row.update(stats[row["variant"]])
        return {"title": title, "rows": rows, "loadavg_before": list(before),
                "loadavg_after": list(os.getloadavg()), "conclusion": conclusion(rows)}


def session_factors(t: Tuning, x1: np.ndarray) -> dict:
    """Threads, spinning, optimisation level and execution mode, each swept alone, for fp32 and int8."""
    factors = {}
    for precision in ("fp32", "int8"):
        for sweep, overrides in SESSION_SWEEPS.items():
            rows, calls = [], {}
            for override in overrides:
                name = ", ".join(f"{k}={_short(v)}" for k, v in override.items())
                calls[name] = partial(t.classify_path(precision, **override), x1)
                settings = {**t.current, **override}
                rows.append({"variant": name, **{k: _short(v) for k, v in settings.items()},
                             "chosen": settings == t.current})
            factors[f"{sweep}_{precision}"] = t.measure(f"session {sweep}, {precision}", rows, calls)
    return factors


def quantization_factor(t: Tuning, x: np.ndarray, reference: np.ndarray, calibration: np.ndarray,
                        scratch: Path) -> dict:
    """Int8 variants rebuilt from the bundle's fp32 backbone: latency and agreement with fp32 ONNX."""
    from edgehisto.export.quantize import QuantizationChoice, quantize_backbone

    recorded = t.bundle.manifest.get("quantization", {}).get(t.stage.name, {})
    rows, calls = [], {}
    for i, (name, override) in enumerate(QUANT_VARIANTS.items()):
        t.log(f"  tuning: quantising variant {name!r}")
        int8 = scratch / f"quant{i}.onnx"
        choice = quantize_backbone(t.bundle.file(t.stage.backbone("fp32")), int8, calibration,
                                   QuantizationChoice(**override)).to_dict()
        settings = {k: v for k, v in choice.items() if k != "calibration_images"}
        path = t.classify_path(int8)
        probs = path.predict(x)
        rows.append({"variant": name, **settings, "size_kb": int8.stat().st_size / 1e3,
                     "top1_agreement": float(np.mean(probs.argmax(1) == reference.argmax(1))),
                     "max_abs_prob_diff": float(np.abs(probs - reference).max()),
                     "chosen": all(recorded.get(k) == v for k, v in settings.items())})
        calls[name] = partial(path, x[:1])
    return t.measure("int8 quantisation (one factor at a time)", rows, calls)


def nchw_backbone(bundle: Bundle, stage: StageSpec, out: Path) -> Path:
    """Convert the reference Keras backbone again with tf2onnx ``inputs_as_nchw=["image"]``."""
    import keras
    import onnx
    import tensorflow as tf
    import tf2onnx

    from edgehisto.export.convert import OPSET, rename_tensor, split_at

    entry = bundle.manifest["stages"][stage.name]
    names = entry.get("reference_outputs", {"logits": "logits", "probabilities": "probabilities"})
    model = keras.models.load_model(bundle.file(entry["reference_keras"]), compile=False)
    backbone = split_at(model, stage.gradcam_layer, names["logits"], names["probabilities"]).backbone
    signature = (tf.TensorSpec((None, *backbone.input.shape[1:]), tf.float32, name="image"),)
    proto, _ = tf2onnx.convert.from_keras(backbone, input_signature=signature, opset=OPSET,
                                          inputs_as_nchw=["image"])
    rename_tensor(proto, proto.graph.output[0].name, "activations")  # the input keeps the spec's name, "image"
    onnx.save(proto, out)
    return out


def transposes(model: Path, optimized: Path, current: dict) -> tuple[int, int]:
    """Transpose nodes in the file, and left after onnxruntime's optimiser at the current level."""
    import onnx

    make_session(model, optimized_model_path=optimized, **current)
    return tuple(sum(n.op_type == "Transpose" for n in onnx.load(str(p)).graph.node) for p in (model, optimized))


def layout_factors(t: Tuning, x: np.ndarray, calibration: np.ndarray, scratch: Path) -> dict:
    """NHWC bundle backbone vs an NCHW-input conversion (fed pre-transposed, or transposed per call)."""
    from edgehisto.export.quantize import QuantizationChoice, quantize_backbone

    t.log("  tuning: converting the reference backbone with inputs_as_nchw")
    nchw = {"fp32": nchw_backbone(t.bundle, t.stage, scratch / "nchw.fp32.onnx"), "int8": scratch / "nchw.int8.onnx"}
    quantize_backbone(nchw["fp32"], nchw["int8"], calibration.transpose(0, 3, 1, 2), QuantizationChoice())
    x1, x1_nchw = x[:1], np.ascontiguousarray(x[:1].transpose(0, 3, 1, 2))
    factors = {}
    for precision in ("fp32", "int8"):
        nhwc, other = t.classify_path(precision), t.classify_path(nchw[precision], nchw=True)
        diff = float(np.abs(other.predict(x) - nhwc.predict(x)).max())
        counts = [transposes(f, scratch / "optimized.onnx", t.current)
                  for f in (t.bundle.file(t.stage.backbone(precision)), nchw[precision])]
        variants = {"NHWC (bundle)": (counts[0], 0.0, partial(nhwc, x1)),
                    "NCHW, input pre-transposed": (counts[1], diff, partial(other.run_prepared, x1_nchw)),
                    "NCHW + numpy transpose per call": (counts[1], diff, partial(other, x1))}
        rows = [{"variant": name, "transposes": n, "transposes_after_ort": n_opt, "max_abs_prob_diff_vs_nhwc": d,
                 "chosen": name.startswith(t.bundle.preprocess.layout)}
                for name, ((n, n_opt), d, _) in variants.items()]
        calls = {name: call for name, (_, _, call) in variants.items()}
        factors[f"layout_{precision}"] = t.measure(f"input layout, {precision}", rows, calls)
    return factors


def tflite_factor(t: Tuning, x1: np.ndarray) -> dict:
    """ONNX int8 (the runtime) vs the TFLite int8 reference under LiteRT, at 1 and 2 threads."""
    from edgehisto.runtime.litert import LiteRTModel

    calls = {}
    for n in (1, 2):
        litert = LiteRTModel(t.bundle.file(t.stage.files["tflite_int8"]), threads=n, output=t.stage.tflite_output)
        calls[f"onnx_int8, threads={n}"] = partial(t.classify_path("int8", intra=n), x1)
        calls[f"tflite_int8, threads={n}"] = partial(litert.predict_one, x1)
    rows = [{"variant": name, "chosen": name.startswith("onnx")} for name in calls]

    def ratios(rows: list[dict]) -> str:
        row = {r["variant"]: r for r in rows}
        return "ONNX int8 / TFLite int8 latency: " + "; ".join(
            f"threads={n}: {compare(row[f'onnx_int8, threads={n}'], row[f'tflite_int8, threads={n}'])}"
            for n in (1, 2))

    return t.measure("ONNX int8 vs TFLite int8 (LiteRT)", rows, calls, ratios)


def _noise(bundle: Bundle, count: int, seed: int) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, (count, *bundle.preprocess.input_size, 3), dtype=np.uint8)
    return normalize(pixels, bundle.preprocess)


def calibration_set(bundle: Bundle, data_dir: Path | None, count: int, seed: int) -> tuple[np.ndarray, str]:
    """Calibration images drawn as export does: the run's train split, else ``--data``, else "noise"."""
    from edgehisto.data.splits import read_split
    from edgehisto.data.tasks import TASKS
    from edgehisto.export.calibration import calibration_images

    run_dir = Path(bundle.manifest.get("training", {}).get("run_dir", "/nonexistent"))
    root = Path(bundle.manifest.get("reference", {}).get("data_root", "/nonexistent"))
    if (run_dir / "split.csv").is_file() and root.is_dir():
        train = [r["relpath"] for r in read_split(run_dir) if r["side"] == "train"]
        return calibration_images(root, train, bundle.preprocess, count, seed), f"train split of {run_dir}"
    if data_dir is not None:
        tiles = TASKS[bundle.task].scan(Path(data_dir))
        return calibration_images(tiles.root, tiles.relpaths, bundle.preprocess, count, seed), f"--data {data_dir}"
    return _noise(bundle, count, seed), "noise"


def tune_onnxruntime(bundle_dir: Path, data_dir: Path | None = None, repeats: int = 50, limit: int = 256,
                     log: Callable[[str], None] = print) -> dict:
    """Measure every runtime/export choice on the bundle's entry stage (batch 1); returns the report."""
    from edgehisto.bench.run import machine_info
    from edgehisto.bundle.preprocess import load_resized
    from edgehisto.data.labelled import labelled_tiles

    bundle = load_bundle(bundle_dir)
    stage = bundle.stages[bundle.entry_stage]
    seed = int(bundle.manifest.get("training", {}).get("config", {}).get("seed", 0))
    count = int(bundle.manifest.get("quantization", {}).get(stage.name, {}).get("calibration_images") or 128)
    start_load = list(os.getloadavg())
    calibration, calibration_source = calibration_set(bundle, data_dir, count, seed)
    notes = [NOISE_NOTE + " (calibration)"] if calibration_source == "noise" else []
    try:
        root, relpaths, _ = labelled_tiles(bundle, data_dir, limit)
        x, tiles_source = normalize(np.stack([load_resized(root / p, bundle.preprocess) for p in relpaths]),
                                    bundle.preprocess), str(root)
    except EdgehistoError as error:
        x, tiles_source = _noise(bundle, min(limit, 64), seed + 1), f"noise ({error})"
        notes.append(NOISE_NOTE + " (tiles)")
    for note in notes:
        log(f"WARNING: {note}")
    current = runtime_settings(bundle.file(stage.backbone("fp32")))
    t = Tuning(bundle, stage, current, repeats, log)
    reference = t.classify_path("fp32").predict(x)
    factors = session_factors(t, x[:1])
    with tempfile.TemporaryDirectory() as scratch:
        factors["quantization"] = quantization_factor(t, x, reference, calibration, Path(scratch))
        factors.update(layout_factors(t, x, calibration, Path(scratch)))
    factors["tflite"] = tflite_factor(t, x[:1])
    return {"bundle": str(bundle_dir), "stage": stage.name, "machine": machine_info(), "repeats": repeats,
            "runtime_settings": current, "tiles": {"source": tiles_source, "n": len(x)},
            "calibration": {"source": calibration_source, "n": len(calibration), "seed": seed},
            "notes": notes, "loadavg_start": start_load, "loadavg_end": list(os.getloadavg()), "factors": factors}


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
             f"Tiles: {result['tiles']['n']} from {result['tiles']['source']}; calibration: "
             f"{result['calibration']['n']} images from {result['calibration']['source']}. "
             f"Latency: backbone + head in ms, median / p95 of {result['repeats']} samples per variant; a table's "
             "variants are timed in rotating rounds (wait for idle workers to stop spinning, one untimed "
             "call, a back-to-back burst).",
             "Runtime session settings (chosen): "
             + ", ".join(f"{k}={_short(v)}" for k, v in result["runtime_settings"].items()) + ".", ""]
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
