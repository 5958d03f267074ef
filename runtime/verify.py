"""On-device verification: replay a bundle's golden set with the runtime alone and gate it.

The gates are those of ``check-parity`` (``edgehisto.bundle.gates``), evaluated on the golden
tiles against the Keras outputs recorded at export, plus the gates only a second machine can
test: the preprocessed tiles must equal the exporting machine's byte for byte, and the int8
outputs must equal, within 1e-3, the int8 outputs the exporting machine got.

When a portability gate fails, the report says where the two machines first parted: the
preprocessing (the uint8 tensor), the int8 backbone (its activations), or the head (run here on
the exporting machine's activations). It names the numpy, OpenCV and onnxruntime versions it ran
with and those the bundle was made with.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from edgehisto.bundle.gates import Gate, GateVerdict, Thresholds, format_gates, pearson
from edgehisto.bundle.manifest import PRECISIONS, Bundle, GoldenSet, load_bundle
from edgehisto.bundle.preprocess import load_resized, normalize
from edgehisto.errors import BundleError
from edgehisto.runtime.classifier import Classifier
from edgehisto.runtime.gradcam import gradcam

# The runtime's numeric dependencies: what decides whether the golden numbers reproduce.
NUMERIC_PACKAGES = ("numpy", "opencv-python-headless", "onnxruntime")
# A head run on the exporting machine's own activations must give its probabilities (fp32 ops only).
HEAD_MAX_ABS_DIFF = 1e-6

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
    versions: dict = field(default_factory=dict)  # package -> {"ran": ..., "bundle": ...}
    parted: list[str] = field(default_factory=list)  # where this machine first differs, per finding


def runtime_versions() -> dict[str, str]:
    """Installed versions of the runtime's numeric packages (``not installed`` if absent)."""
    found = {}
    for name in NUMERIC_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def verify_bundle(bundle: Bundle | str | Path, precisions: tuple[str, ...] = PRECISIONS) -> VerifyReport:
    """Check hashes, run the golden tiles at each precision and gate the outputs.

    Raises:
        BundleError: the bundle is unusable (missing, tampered, unknown schema) or has no golden set.
    """
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)  # sha256 of every file
    golden = bundle.golden
    if not golden:
        raise BundleError(f"bundle {bundle.path} has no golden set (exported before edgehisto verify); "
                          "re-export it")
    thresholds = golden.thresholds
    spec = bundle.preprocess
    preprocessed = np.stack([load_resized(bundle.file(name), spec) for name in golden.tiles])
    x = normalize(preprocessed, spec)
    with np.load(bundle.file(golden.expected), allow_pickle=False) as stored:
        expected = dict(stored)
    made_with = bundle.made_with
    report = VerifyReport(str(bundle.path), bundle.name, bundle.manifest_sha256, cpu_kind(), list(precisions), len(x),
                          versions={name: {"ran": ran, "bundle": made_with.get(name, "not recorded")}
                                    for name, ran in runtime_versions().items()})
    _preprocessing_gate(report, preprocessed, expected)
    for precision in precisions:
        runtime = Classifier(bundle, precision=precision, allow_failed_parity=True)
        backbone_outputs: dict[str, np.ndarray] = {}  # stages of a multitask bundle share one backbone file
        for name, stage in bundle.stages.items():
            backbone = stage.backbone(precision)
            if backbone not in backbone_outputs:
                backbone_outputs[backbone] = runtime.activations(x, stage)
            _stage_gates(report, runtime, name, stage, backbone_outputs[backbone], expected, thresholds, golden)
        if bundle.routing:
            _routed_gate(report, runtime, bundle, x, expected, thresholds, backbone_outputs)
    return report


def _stage_gates(report: VerifyReport, runtime: Classifier, name: str, stage, activations: np.ndarray,
                 expected: dict, thresholds: Thresholds, golden: GoldenSet) -> None:
    """The gates of one stage at the runtime's precision, on its backbone's golden activations."""
    keras_p, keras_top1 = expected[f"keras_probabilities__{name}"], expected[f"keras_top1__{name}"]
    probabilities = runtime.head(activations, stage)[1]
    maps = gradcam(activations, runtime.gradients(activations, stage, keras_top1))
    r = [pearson(a, b) for a, b in zip(expected[f"keras_gradcam__{name}"], maps, strict=True)]
    if runtime.precision == "fp32":
        report.gate(name, "onnx_fp32_max_abs_prob_diff", np.abs(probabilities - keras_p).max(),
                    thresholds.fp32_max_abs_diff, "<=")
        report.gate(name, "gradcam_fp32_min_pearson", min(r), thresholds.gradcam_min_pearson, ">=")
        return
    recorded = expected[f"int8_probabilities__{name}"]
    agreement, mean_r = np.mean(probabilities.argmax(1) == keras_top1), np.mean(r)
    if golden.synthetic:
        # int8 against Keras on synthetic (off-distribution) tiles measures the bundle's quantisation,
        # not this machine: export gated it on real held-out tiles (parity.json). What this machine
        # can change, its kernels, the portability gates below bind exactly.
        report.reported.setdefault(name, {}).update(onnx_int8_top1_agreement=float(agreement),
                                                    gradcam_int8_mean_pearson=float(mean_r))
    else:
        report.gate(name, "onnx_int8_top1_agreement", agreement, thresholds.int8_min_agreement, ">=")
        report.gate(name, "gradcam_int8_mean_pearson", mean_r, thresholds.gradcam_int8_min_mean_pearson, ">=")
    # Portability: the exporting machine's int8 numbers, reproduced here.
    drift = np.abs(probabilities - recorded).max()
    report.gate(name, "int8_vs_export_max_abs_prob_diff", drift, golden.int8_portability_max_abs_prob_diff, "<=")
    report.gate(name, "int8_vs_export_label_agreement", np.mean(probabilities.argmax(1) == recorded.argmax(1)),
                1.0, ">=")
    if drift > 0:
        _locate_int8_drift(report, runtime, name, stage, activations, expected)
    report.reported.setdefault(name, {}).update({
        "onnx_int8_max_abs_prob_diff": float(np.abs(probabilities - keras_p).max()),
        "gradcam_int8_min_pearson": float(min(r)),
    })


def _preprocessing_gate(report: VerifyReport, preprocessed: np.ndarray, expected: dict) -> None:
    """The golden tiles' uint8 input tensor against the exporting machine's, byte for byte."""
    recorded = expected.get("preprocessed")
    if recorded is None:
        report.reported.setdefault("input", {})["preprocessing_not_recorded_at_export"] = 1.0
        return
    same_shape = recorded.shape == preprocessed.shape
    differ = int(np.count_nonzero(recorded != preprocessed)) if same_shape else int(preprocessed.size)
    report.gate("input", "preprocessed_values_differing", differ, 0, "<=")
    if differ:
        largest = int(np.abs(recorded.astype(np.int16) - preprocessed).max()) if same_shape else -1
        report.parted.append(f"preprocessing: {differ} of {preprocessed.size} uint8 input values differ from the "
                             f"exporting machine's (largest difference {largest})")


def _locate_int8_drift(report: VerifyReport, runtime: Classifier, name: str, stage, activations: np.ndarray,
                       expected: dict) -> None:
    """Say whether an int8 drift starts in the backbone or in the head."""
    key = runtime.bundle.golden_activations_key(name)
    if key not in expected:
        report.parted.append(f"{name}: the bundle records no int8 activations (exported before they were kept); "
                             "re-export it to locate the drift")
        return
    recorded = expected[key]
    differ = int(np.count_nonzero(recorded != activations))
    head_drift = float(np.abs(runtime.head(recorded, stage)[1] - expected[f"int8_probabilities__{name}"]).max())
    if differ:
        report.parted.append(f"{name}: int8 backbone: {differ} of {activations.size} activations differ from the "
                             f"exporting machine's (max |diff| {np.abs(recorded - activations).max():.3g})")
    if head_drift > HEAD_MAX_ABS_DIFF:
        report.parted.append(f"{name}: head: on the exporting machine's activations it gives probabilities "
                             f"{head_drift:.3g} away from that machine's")


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
                 expected: dict, thresholds: Thresholds, backbone_outputs: dict[str, np.ndarray]) -> None:
    """The end-to-end routed label of the runtime's own routing code vs the Keras routing (on the
    backbone outputs the stage gates already checked, so no backbone runs twice)."""
    results = runtime.classify_tensor(x, backbone_outputs=backbone_outputs)
    same = [(r.stages[-1].stage, r.stages[-1].label) == keras_route(bundle, expected, i)
            for i, r in enumerate(results)]
    if runtime.precision == "int8" and bundle.golden.synthetic:
        report.reported.setdefault("routed", {})["onnx_int8_label_agreement"] = float(np.mean(same))
        return
    threshold = 0.999 if runtime.precision == "fp32" else thresholds.int8_min_agreement
    report.gate("routed", f"onnx_{runtime.precision}_label_agreement", np.mean(same), threshold, ">=")


def format_report(report: VerifyReport) -> str:
    """The gates as an aligned table with a verdict line naming the machine."""
    lines = format_gates(report.gates, report.reported)
    lines += [f"parted at {where}" for where in dict.fromkeys(report.parted)]
    lines.append("versions (ran / bundle made with): " + ", ".join(
        f"{name} {v['ran']} / {v['bundle']}" for name, v in report.versions.items()))
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
