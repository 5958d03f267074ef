"""On-device verification: replay a bundle's golden set with the runtime alone and gate it.

The gates are those of ``check-parity`` (``edgehisto.bundle.gates``), evaluated on the golden
tiles against the Keras outputs recorded at export, plus one gate only a second machine can
test: the int8 outputs must equal, within 1e-3, the int8 outputs the exporting machine got.
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgehisto.bundle.gates import Gate, GateVerdict, Thresholds, format_gates, pearson
from edgehisto.bundle.manifest import MANIFEST, PRECISIONS, Bundle, load_bundle
from edgehisto.bundle.preprocess import load_resized, normalize
from edgehisto.errors import BundleError
from edgehisto.runtime.classifier import Classifier

# CPU features that select different onnxruntime int8 kernels, best first.
_KERNEL_FEATURES = ("AVX512_VNNI", "AVX512VNNI", "AVX_VNNI", "AVXVNNI", "AVX512BW", "AVX2", "SSE42",
                    "ASIMDDP", "ASIMD")


def cpu_kind() -> str:
    """The machine and the best int8-relevant CPU feature, e.g. ``x86_64 AVX2``.

    Read from numpy's CPUID-based dispatch table rather than ``/proc/cpuinfo``, so that it is
    also right under QEMU user-mode emulation, which passes the host's ``/proc`` through.
    """
    machine = platform.machine()
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as features
    best = next((name for name in _KERNEL_FEATURES if features.get(name)), "baseline")
    return f"{machine} {best.replace('AVX512VNNI', 'AVX512_VNNI').replace('AVXVNNI', 'AVX_VNNI')}"


@dataclass
class VerifyReport(GateVerdict):
    """The verdict of one ``verify`` run on one machine."""

    bundle: str
    name: str
    manifest_sha256: str
    cpu: str
    precisions: list[str]
    n_tiles: int
    gates: list[Gate] = field(default_factory=list)
    reported: dict = field(default_factory=dict)


def verify_bundle(bundle: Bundle | str | Path, precisions: tuple[str, ...] = PRECISIONS) -> VerifyReport:
    """Check hashes, run the golden tiles at each precision and gate the outputs.

    Raises:
        BundleError: the bundle is unusable (missing, tampered, unknown schema) or has no golden set.
    """
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)  # sha256 of every file
    golden = bundle.manifest.get("golden")
    if not golden:
        raise BundleError(f"bundle {bundle.path} has no golden set (exported before edgehisto verify); "
                          "re-export it")
    thresholds = Thresholds.from_dict(golden["thresholds"])
    spec = bundle.preprocess
    x = normalize(np.stack([load_resized(bundle.file(name), spec) for name in golden["tiles"]]), spec)
    with np.load(bundle.file(golden["expected"]), allow_pickle=False) as stored:
        expected = dict(stored)
    manifest_hash = hashlib.sha256(bundle.file(MANIFEST).read_bytes()).hexdigest()
    report = VerifyReport(str(bundle.path), bundle.manifest.get("name", bundle.path.name), manifest_hash,
                          cpu_kind(), list(precisions), len(x))
    for precision in precisions:
        runtime = Classifier(bundle, precision=precision, allow_failed_parity=True)
        for name, stage in bundle.stages.items():
            _stage_gates(report, runtime, name, stage, x, expected, thresholds, golden)
        if bundle.routing:
            _routed_gate(report, runtime, bundle, x, expected, thresholds)
    return report


def _stage_gates(report: VerifyReport, runtime: Classifier, name: str, stage, x: np.ndarray,
                 expected: dict, thresholds: Thresholds, golden: dict) -> None:
    """The gates of one stage at the runtime's precision."""
    keras_p, keras_top1 = expected[f"keras_probabilities__{name}"], expected[f"keras_top1__{name}"]
    activations = runtime.activations(x, stage)
    probabilities = runtime.head(activations, stage)[1]
    maps = runtime.gradcam(x, name, keras_top1)
    r = [pearson(a, b) for a, b in zip(expected[f"keras_gradcam__{name}"], maps, strict=True)]
    if runtime.precision == "fp32":
        report.gate(name, "onnx_fp32_max_abs_prob_diff", np.abs(probabilities - keras_p).max(),
                    thresholds.fp32_max_abs_diff, "<=")
        report.gate(name, "gradcam_fp32_min_pearson", min(r), thresholds.gradcam_min_pearson, ">=")
        return
    recorded = expected[f"int8_probabilities__{name}"]
    agreement, mean_r = np.mean(probabilities.argmax(1) == keras_top1), np.mean(r)
    if synthetic_golden(golden):
        # int8 against Keras on synthetic (off-distribution) tiles measures the bundle's quantisation,
        # not this machine: export gated it on real held-out tiles (parity.json). What this machine
        # can change, its kernels, the portability gates below bind exactly.
        report.reported.setdefault(name, {}).update(onnx_int8_top1_agreement=float(agreement),
                                                    gradcam_int8_mean_pearson=float(mean_r))
    else:
        report.gate(name, "onnx_int8_top1_agreement", agreement, thresholds.int8_min_agreement, ">=")
        report.gate(name, "gradcam_int8_mean_pearson", mean_r, thresholds.gradcam_int8_min_mean_pearson, ">=")
    # Portability: the exporting machine's int8 numbers, reproduced here.
    report.gate(name, "int8_vs_export_max_abs_prob_diff", np.abs(probabilities - recorded).max(),
                golden["int8_portability_max_abs_prob_diff"], "<=")
    report.gate(name, "int8_vs_export_label_agreement", np.mean(probabilities.argmax(1) == recorded.argmax(1)),
                1.0, ">=")
    report.reported.setdefault(name, {}).update({
        "onnx_int8_max_abs_prob_diff": float(np.abs(probabilities - keras_p).max()),
        "gradcam_int8_min_pearson": float(min(r)),
    })


def keras_route(bundle: Bundle, expected: dict, row: int) -> tuple[str, str]:
    """(final stage, label) the recorded Keras top-1 predictions route one golden tile to."""
    stage = bundle.entry_stage
    while True:
        label = bundle.stages[stage].class_names[int(expected[f"keras_top1__{stage}"][row])]
        following = bundle.routing.get(stage, {}).get(label)
        if following is None:
            return stage, label
        stage = following


def _routed_gate(report: VerifyReport, runtime: Classifier, bundle: Bundle, x: np.ndarray,
                 expected: dict, thresholds: Thresholds) -> None:
    """The end-to-end routed label of the runtime's own routing code vs the Keras routing."""
    results = runtime.classify_tensor(x)
    same = [(r.stages[-1].stage, r.stages[-1].label) == keras_route(bundle, expected, i)
            for i, r in enumerate(results)]
    if runtime.precision == "int8" and synthetic_golden(bundle.manifest["golden"]):
        report.reported.setdefault("routed", {})["onnx_int8_label_agreement"] = float(np.mean(same))
        return
    threshold = 0.999 if runtime.precision == "fp32" else thresholds.int8_min_agreement
    report.gate("routed", f"onnx_{runtime.precision}_label_agreement", np.mean(same), threshold, ">=")


def synthetic_golden(golden: dict) -> bool:
    """Whether the golden tiles are synthetic (embedded bundles carry no real tissue)."""
    return str(golden.get("source", "")).startswith("synthetic")


def format_report(report: VerifyReport) -> str:
    """The gates as an aligned table with a verdict line naming the machine."""
    lines = format_gates(report.gates, report.reported)
    verdict = "VERIFIED" if report.passed else "VERIFY FAILED"
    lines.append(f"{verdict}: {report.name} (manifest sha256 {report.manifest_sha256[:12]}) on {report.cpu}, "
                 f"{report.n_tiles} golden tiles, {'+'.join(report.precisions)}")
    return "\n".join(lines)


def verify_precisions(choice: str) -> tuple[str, ...]:
    """``fp32``, ``int8`` or ``both`` as a tuple of precisions."""
    if choice == "both":
        return PRECISIONS
    if choice not in PRECISIONS:
        raise BundleError(f"unknown precision {choice!r}")
    return (choice,)
