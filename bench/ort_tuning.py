"""The measurements behind the runtime's onnxruntime and export choices, for a bundle's entry stage.

Each factor (session options, int8 quantisation, input layout, ONNX vs TFLite int8) is one table of
variants of the classify path (backbone + head, batch 1), timed together in rotating rounds so load
from other processes hits them alike: read rows as ratios within a table, next to the load averages.
Bench reads bundles only: the int8 and NCHW backbones it compares with the bundle's own are made
beforehand by the ``export-variants`` command and read here from their directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from edgehisto.bench.config import no_progress
from edgehisto.bench.machine import machine_info
from edgehisto.bench.timing import interleaved
from edgehisto.bench.verdicts import CONSISTENT_ROUNDS, NOISE_RATIO
from edgehisto.bundle.litert import probabilities
from edgehisto.bundle.manifest import Bundle, StageSpec, load_bundle, sha256_of
from edgehisto.bundle.preprocess import normalize
from edgehisto.errors import EdgehistoError
from edgehisto.runtime.sessions import SPINNING, make_session

LEVELS = ("ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL")
SESSION_SWEEPS = {  # each sweep changes one setting of the runtime's current session options
    "threads": [{"intra": n} for n in (0, 1, 2)],
    "spinning": [{"spin": "1"}, {"spin": "0"}],
    "optimization": [{"level": level} for level in LEVELS],
    "execution": [{"mode": "ORT_SEQUENTIAL", "inter": 1}, {"mode": "ORT_PARALLEL", "inter": 1},
                  {"mode": "ORT_PARALLEL", "inter": 2}],
}
VARIANTS_FILE = "variants.json"  # written by the export-variants command (export/variants.py)
# A difference counts only if it is >= 5% and the faster variant wins >= 80% of the rounds
# (bench/verdicts.py: the same rule as the bench's targets).
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
        """Probabilities of a preprocessed batch."""
        if self.nchw:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return self.run_prepared(x)

    def run_prepared(self, x: np.ndarray) -> np.ndarray:
        """Probabilities of a batch already in this variant's input layout."""
        acts = self.backbone.run(None, {"image": x})[0]
        return probabilities(self.head.run(["probabilities"], {"activations": acts})[0], self.output)

    def predict(self, x: np.ndarray, batch: int = 32) -> np.ndarray:
        """Probabilities of a large batch, run in chunks of ``batch``."""
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


def short(value) -> str:
    """A setting as the tables show it: onnxruntime enum names without their ``ORT_`` prefix."""
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
                name = ", ".join(f"{k}={short(v)}" for k, v in override.items())
                calls[name] = partial(t.classify_path(precision, **override), x1)
                settings = {**t.current, **override}
                rows.append({"variant": name, **{k: short(v) for k, v in settings.items()},
                             "chosen": settings == t.current})
            factors[f"{sweep}_{precision}"] = t.measure(f"session {sweep}, {precision}", rows, calls)
    return factors


def quantization_factor(t: Tuning, x: np.ndarray, reference: np.ndarray, variants: dict) -> dict:
    """Int8 backbones quantised one factor at a time: latency and agreement with fp32 ONNX."""
    recorded = t.bundle.quantization(t.stage.name)
    rows, calls = [], {}
    for variant in (v for v in variants["variants"] if v["kind"] == "quantization"):
        settings = {k: v for k, v in variant["quantization"].items() if k != "calibration_images"}
        path = t.classify_path(variant["path"])
        probs = path.predict(x)
        rows.append({"variant": variant["name"], **settings, "size_kb": variant["bytes"] / 1e3,
                     "top1_agreement": float(np.mean(probs.argmax(1) == reference.argmax(1))),
                     "max_abs_prob_diff": float(np.abs(probs - reference).max()),
                     "chosen": all(recorded.get(k) == v for k, v in settings.items())})
        calls[variant["name"]] = partial(path, x[:1])
    return t.measure("int8 quantisation (one factor at a time)", rows, calls)


def layout_factors(t: Tuning, x: np.ndarray, variants: dict) -> dict:
    """NHWC bundle backbone vs an NCHW-input conversion (fed pre-transposed, or transposed per call)."""
    nchw = {v["precision"]: v for v in variants["variants"] if v["kind"] == "layout"}
    x1, x1_nchw = x[:1], np.ascontiguousarray(x[:1].transpose(0, 3, 1, 2))
    factors = {}
    for precision in ("fp32", "int8"):
        nhwc, other = t.classify_path(precision), t.classify_path(nchw[precision]["path"], nchw=True)
        diff = float(np.abs(other.predict(x) - nhwc.predict(x)).max())
        counts = variants["bundle_backbones"][precision]["transposes"], nchw[precision]["transposes"]
        measured = {"NHWC (bundle)": (counts[0], 0.0, partial(nhwc, x1)),
                    "NCHW, input pre-transposed": (counts[1], diff, partial(other.run_prepared, x1_nchw)),
                    "NCHW + numpy transpose per call": (counts[1], diff, partial(other, x1))}
        rows = [{"variant": name, "transposes": n["in_file"], "transposes_after_ort": n["after_onnxruntime"],
                 "max_abs_prob_diff_vs_nhwc": d, "chosen": name.startswith(t.bundle.preprocess.layout)}
                for name, (n, d, _) in measured.items()]
        calls = {name: call for name, (_, _, call) in measured.items()}
        factors[f"layout_{precision}"] = t.measure(f"input layout, {precision}", rows, calls)
    return factors


def tflite_factor(t: Tuning, x1: np.ndarray) -> dict:
    """ONNX int8 (the runtime) vs the TFLite int8 reference under LiteRT, at 1 and 2 threads."""
    from edgehisto.bundle.litert import LiteRTModel

    calls = {}
    for n in (1, 2):
        litert = LiteRTModel(t.bundle.file(t.stage.files["tflite_int8"]), threads=n, output=t.stage.tflite_output)
        calls[f"onnx_int8, threads={n}"] = partial(t.classify_path("int8", intra=n), x1)
        calls[f"tflite_int8, threads={n}"] = partial(litert.predict_one, x1)
    rows = [{"variant": name, "chosen": name.startswith("onnx")} for name in calls]

    def ratios(rows: list[dict]) -> str:
        row = {r["variant"]: r for r in rows}
        parts = []
        for n in (1, 2):
            onnx, tflite = row[f"onnx_int8, threads={n}"], row[f"tflite_int8, threads={n}"]
            slow, fast = (onnx, tflite) if onnx["median_ms"] >= tflite["median_ms"] else (tflite, onnx)
            parts.append(f"threads={n}: {onnx['median_ms'] / tflite['median_ms']:.2f} ({compare(slow, fast)})")
        return "ONNX int8 / TFLite int8 latency: " + "; ".join(parts)

    return t.measure("ONNX int8 vs TFLite int8 (LiteRT)", rows, calls, ratios)


def _noise(bundle: Bundle, count: int, seed: int) -> np.ndarray:
    """Uniform random tiles, preprocessed: only for when no labelled tiles can be found."""
    pixels = np.random.default_rng(seed).integers(0, 256, (count, *bundle.preprocess.input_size, 3), dtype=np.uint8)
    return normalize(pixels, bundle.preprocess)


def read_variants(variants_dir: Path, bundle: Bundle) -> dict:
    """The ``variants.json`` of the ``export-variants`` command, checked against ``bundle``'s entry stage.

    Each variant gets its resolved ``path``.

    Raises:
        EdgehistoError: no description, variants of another bundle, or a file missing or changed.
    """
    described_at = Path(variants_dir) / VARIANTS_FILE
    if not described_at.is_file():
        raise EdgehistoError(f"{variants_dir} holds no {VARIANTS_FILE}; make it with "
                             f"`export-variants {bundle.path} --data DIR --out {variants_dir}`")
    described = json.loads(described_at.read_text())
    stage = bundle.stages[bundle.entry_stage]
    made_from = described["bundle"]
    if (made_from["stage"], made_from["backbone_fp32_sha256"]) != (
            stage.name, bundle.files[stage.backbone("fp32")].sha256):
        raise EdgehistoError(f"the variants in {variants_dir} were exported from another bundle "
                             f"({made_from['path']}, stage {made_from['stage']}); export them again from {bundle.path}")
    for variant in described["variants"]:
        variant["path"] = Path(variants_dir) / variant["file"]
        if not variant["path"].is_file() or sha256_of(variant["path"]) != variant["sha256"]:
            raise EdgehistoError(f"variant file {variant['path']} is missing or changed since export-variants wrote it")
    return described


def tune_onnxruntime(bundle_dir: Path, variants_dir: Path, data_dir: Path | None = None, repeats: int = 50,
                     limit: int = 256, log: Callable[[str], None] = no_progress) -> dict:
    """Measure every runtime/export choice on the bundle's entry stage (batch 1); returns the report."""
    from edgehisto.bundle.preprocess import load_resized
    from edgehisto.datasets.labelled import labelled_tiles

    bundle = load_bundle(bundle_dir)
    stage = bundle.stages[bundle.entry_stage]
    variants = read_variants(variants_dir, bundle)
    start_load, notes = list(os.getloadavg()), []
    try:
        root, relpaths, _ = labelled_tiles(bundle, data_dir, limit)
        x, tiles_source = normalize(np.stack([load_resized(root / p, bundle.preprocess) for p in relpaths]),
                                    bundle.preprocess), str(root)
    except EdgehistoError as error:
        x, tiles_source = _noise(bundle, min(limit, 64), seed=1), f"noise ({error})"
        notes.append(NOISE_NOTE + " (tiles)")
    for note in notes:
        log(f"WARNING: {note}")
    current = runtime_settings(bundle.file(stage.backbone("fp32")))
    t = Tuning(bundle, stage, current, repeats, log)
    reference = t.classify_path("fp32").predict(x)
    factors = session_factors(t, x[:1])
    factors["quantization"] = quantization_factor(t, x, reference, variants)
    factors.update(layout_factors(t, x, variants))
    factors["tflite"] = tflite_factor(t, x[:1])
    return {"bundle": str(bundle_dir), "stage": stage.name, "machine": machine_info(), "repeats": repeats,
            "runtime_settings": current, "tiles": {"source": tiles_source, "n": len(x)},
            "variants": {"dir": str(variants_dir), "calibration": variants["calibration"]},
            "notes": notes, "loadavg_start": start_load, "loadavg_end": list(os.getloadavg()), "factors": factors}
