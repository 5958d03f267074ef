"""The runtime room has no door to TensorFlow: neither its imports nor a classify run load it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgehisto.runtime
from edgehisto.bundle.manifest import MANIFEST, SCHEMA_VERSION, sha256_of
from edgehisto.bundle.preprocess import PreprocessSpec

RUNTIME_DIR = Path(edgehisto.runtime.__file__).resolve().parent

# Top-level packages of the training/export toolchain. "onnx" is matched exactly, so the
# allowed "onnxruntime" is not caught by it; the others match as prefixes (tensorflow_io, ...).
FORBIDDEN_PREFIXES = ("tensorflow", "keras", "tf_keras", "tf2onnx")
FORBIDDEN_PACKAGES = ("onnx", "sklearn", "matplotlib", "edgehisto.train", "edgehisto.export")


def is_forbidden(module: str) -> bool:
    """True if ``module`` belongs to the training/export toolchain the runtime must not load."""
    if module.split(".")[0].startswith(FORBIDDEN_PREFIXES):
        return True
    return any(module == package or module.startswith(package + ".") for package in FORBIDDEN_PACKAGES)


def test_forbidden_module_names_are_matched_by_package_not_by_string_prefix():
    assert is_forbidden("onnx") and is_forbidden("onnx.helper") and is_forbidden("tensorflow.python")
    assert is_forbidden("tensorflow_io_gcs_filesystem") and is_forbidden("edgehisto.export.parity")
    assert not is_forbidden("onnxruntime") and not is_forbidden("onnxruntime.capi._pybind_state")
    assert not is_forbidden("edgehisto.runtime.classifier") and not is_forbidden("edgehisto.trainer")


# -- a tiny hand-built bundle: 8x8 input, mean-pool + linear head, exact gradient graph ----------
INPUT_SIZE = 8
WEIGHTS = np.array([[0.5], [-1.0], [2.0]], np.float32)  # (channels, 1 logit)


def _save(graph, path: Path) -> None:
    from onnx import checker, helper, save

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    checker.check_model(model)
    save(model, path)


def _write_tiny_models(folder: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    def tensor(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    nhwc = ["N", INPUT_SIZE, INPUT_SIZE, 3]
    _save(helper.make_graph(
        [helper.make_node("Mul", ["image", "two"], ["activations"])], "backbone",
        [tensor("image", nhwc)], [tensor("activations", nhwc)],
        [numpy_helper.from_array(np.float32(2.0), "two")],
    ), folder / "backbone.onnx")
    _save(helper.make_graph([
        helper.make_node("ReduceMean", ["activations"], ["pooled"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["pooled", "w"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["probabilities"]),
    ], "head", [tensor("activations", nhwc)], [tensor("logits", ["N", 1]), tensor("probabilities", ["N", 1])],
        [numpy_helper.from_array(WEIGHTS, "w")]), folder / "head.onnx")
    # d(seed . mean_hw(A) @ W)/dA = (seed @ W^T) / (h * w), the same at every position
    _save(helper.make_graph([
        helper.make_node("MatMul", ["seed", "w_t"], ["per_channel"]),
        helper.make_node("Unsqueeze", ["per_channel", "hw_axes"], ["per_channel_hw"]),
        helper.make_node("Shape", ["activations"], ["shape"]),
        helper.make_node("Expand", ["per_channel_hw", "shape"], ["spread"]),
        helper.make_node("Mul", ["spread", "inv_count"], ["gradient"]),
    ], "head_gradient", [tensor("activations", nhwc), tensor("seed", ["N", 1])], [tensor("gradient", nhwc)], [
        numpy_helper.from_array(WEIGHTS.T.copy(), "w_t"),
        numpy_helper.from_array(np.array([1, 2], np.int64), "hw_axes"),
        numpy_helper.from_array(np.float32(1.0 / INPUT_SIZE**2), "inv_count"),
    ]), folder / "head_gradient.onnx")


@pytest.fixture
def tiny_bundle(tmp_path: Path) -> Path:
    """A valid one-stage sigmoid bundle of three tiny ONNX graphs (fp32 and 'int8' share one)."""
    pytest.importorskip("onnx")  # only to write the fixture; the subprocess never imports it
    bundle = tmp_path / "tiny_bundle"
    (bundle / "tiny").mkdir(parents=True)
    _write_tiny_models(bundle / "tiny")
    files = {"backbone_fp32": "tiny/backbone.onnx", "backbone_int8": "tiny/backbone.onnx",
             "head": "tiny/head.onnx", "head_gradient": "tiny/head_gradient.onnx"}
    manifest = {
        "schema_version": SCHEMA_VERSION, "task": "tiny",
        "preprocess": PreprocessSpec(input_size=(INPUT_SIZE, INPUT_SIZE)).to_dict(),
        "entry_stage": "tiny", "routing": {},
        "stages": {"tiny": {
            "class_names": ["negative", "positive"], "output": "sigmoid", "gradcam_layer": "input",
            "activations_shape": [INPUT_SIZE, INPUT_SIZE, 3], "n_params": 3, "files": files,
        }},
        "files": {name: {"sha256": sha256_of(bundle / name), "bytes": (bundle / name).stat().st_size}
                  for name in sorted(set(files.values()))},
        "parity": {"passed": True},  # hand-built: nothing to compare against
    }
    (bundle / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return bundle


# -- the dynamic check: a fresh interpreter ---------------------------------------------------
FRESH_INTERPRETER = """
import json, sys
import edgehisto, edgehisto.runtime, edgehisto.runtime.cli_classify, edgehisto.cli

report, bundle, tile, cams = sys.argv[1:5]
if bundle:
    from edgehisto.runtime import Classifier

    (result,) = Classifier(bundle).classify_paths([tile], gradcam=True)
    assert result.ok and result.stages[0].cam is not None, result.error
    try:
        edgehisto.cli.main(["classify", tile, "--model", bundle, "--gradcam", cams, "--format", "json"])
    except SystemExit as stop:
        assert stop.code == 0, f"classify exited with {stop.code}"
    try:  # on-device verification of the embedded default must not need TensorFlow either
        edgehisto.cli.main(["verify", "--json"])
    except SystemExit as stop:
        assert stop.code == 0, f"verify exited with {stop.code}"
with open(report, "w") as handle:
    json.dump(sorted(sys.modules), handle)
"""


def _modules_loaded_by_fresh_interpreter(tmp_path: Path, bundle: Path | None = None,
                                         tile: Path | None = None) -> list[str]:
    report = tmp_path / "modules.json"
    arguments = [str(report), str(bundle or ""), str(tile or ""), str(tmp_path / "cams")]
    done = subprocess.run([sys.executable, "-c", FRESH_INTERPRETER, *arguments], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(report.read_text())


def test_importing_the_runtime_and_the_cli_loads_no_training_or_export_module(tmp_path):
    loaded = _modules_loaded_by_fresh_interpreter(tmp_path)
    assert "edgehisto.runtime.cli_classify" in loaded
    assert [m for m in loaded if is_forbidden(m)] == []


def test_classifying_a_tile_with_gradcam_loads_no_training_or_export_module(tmp_path, tiny_bundle):
    tile = tmp_path / "tile.png"
    assert cv2.imwrite(str(tile), np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    loaded = _modules_loaded_by_fresh_interpreter(tmp_path, tiny_bundle, tile)
    assert "onnxruntime" in loaded, "the run should have used onnxruntime"
    assert len(list((tmp_path / "cams").glob("tile.*.tiny.gradcam.npy"))) == 1  # <stem>.<path id>.<stage>
    assert [m for m in loaded if is_forbidden(m)] == []


# -- the static check: every import statement in runtime/, lazy ones included -----------------
def _package_of(path: Path) -> str:
    """The package a runtime source file's relative imports are resolved against."""
    return ".".join(["edgehisto", "runtime", *path.relative_to(RUNTIME_DIR).parent.parts])


def imported_modules(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, module) for every import in a file: top-level, inside functions, or importlib."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from .x / from ..x: climb level - 1 packages up from ``package``
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")):
            found.append((node.lineno, node.args[0].value))
    return found


def test_static_import_scan_resolves_relative_and_lazy_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from ..train import fit\nfrom . import bundle\n\ndef f():\n    import tf2onnx\n"
                      "    importlib.import_module('keras')\n")
    modules = {m for _, m in imported_modules(sample, "edgehisto.runtime")}
    assert modules >= {"edgehisto.train", "edgehisto.train.fit", "edgehisto.runtime.bundle", "tf2onnx", "keras"}


def test_no_runtime_source_file_imports_training_or_export_modules():
    sources = sorted(RUNTIME_DIR.rglob("*.py"))
    assert RUNTIME_DIR / "classifier.py" in sources
    offences = [f"{path.relative_to(RUNTIME_DIR.parent)}:{line}: imports {module}"
                for path in sources for line, module in imported_modules(path, _package_of(path))
                if is_forbidden(module)]
    assert offences == [], "\n".join(offences)
