"""The golden set: a few tiles and the outputs they must give, stored in the bundle at export.

``edgehisto verify`` replays them with the runtime alone (no TensorFlow, no data folder) on
whatever machine it runs on. The set holds:

* ``golden/tiles/NN.png``: tiles from the calibration draw (training split), stored losslessly as
  the runtime reads them: the decoded tile when it fits the model input (so verify also exercises
  padding and resizing), else the tile already resized to the model input;
* ``golden/expected.npz``: per stage, the Keras reference's probabilities, its top-1 class and
  its GradientTape Grad-CAM map for that class, and the exporting machine's ONNX int8
  probabilities (the cross-CPU reference); the exporting machine's preprocessed uint8 tiles
  (``preprocessed``) and int8 backbone activations (``int8_activations__<stage>``, once per
  backbone file), so that ``verify`` can say where a drift starts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from edgehisto.bundle.gates import Thresholds
from edgehisto.bundle.images import decode_rgb
from edgehisto.bundle.manifest import Bundle, load_bundle
from edgehisto.bundle.preprocess import PreprocessSpec, load_resized, normalize, resize_tile
from edgehisto.errors import ExportError
from edgehisto.runtime.classifier import Classifier

GOLDEN_DIR = "golden"
EXPECTED = f"{GOLDEN_DIR}/expected.npz"
GOLDEN_COUNT = 16
# int8 outputs on another CPU vs those recorded at export: the cross-CPU portability gate.
PORTABILITY_MAX_ABS_PROB_DIFF = 1e-3


def golden_tile(path: Path, spec: PreprocessSpec) -> np.ndarray:
    """The uint8 RGB tile to store: as decoded if it fits the model input, else resized."""
    rgb = decode_rgb(Path(path).read_bytes(), max_pixels=spec.max_pixels, min_side=spec.min_side)
    height, width = spec.input_size
    return rgb if rgb.shape[0] <= height and rgb.shape[1] <= width else resize_tile(rgb, spec)


def choose_golden(entry_probabilities: np.ndarray, count: int = GOLDEN_COUNT) -> list[int]:
    """Indices of up to ``count`` tiles: round-robin over predicted classes, clearest first.

    The clearest tiles are chosen because int8 legitimately flips near-ties, and the golden set
    tests the machine, not the decision boundary; check-parity's gates still see every tile.

    Within a class, tiles are taken in order of decreasing top-1 margin (Keras probability of the
    top class minus the runner-up's).
    """
    ordered = np.sort(entry_probabilities, axis=1)
    margin = ordered[:, -1] - ordered[:, -2]
    predicted = entry_probabilities.argmax(axis=1)
    queues = [sorted(np.flatnonzero(predicted == c), key=lambda i: (-margin[i], i))
              for c in range(entry_probabilities.shape[1])]
    chosen: list[int] = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(int(queue.pop(0)))
    return sorted(chosen)


def write_golden_set(bundle: Bundle, sources: list[Path], reference, origins: list[str] | None = None) -> dict:
    """Write the golden tiles and expected outputs; returns the manifest's ``golden`` entry.

    Args:
        bundle: the bundle being written, its manifest so far (stages, preprocess, routing, the
            listed ONNX files, which must exist).
        sources: candidate tile files (the calibration draw, training split).
        reference: ``reference(stage_name) -> (keras_model, outputs)``, the Keras references.
        origins: the sources' paths relative to their data root, recorded per chosen tile (for
            attribution when real tiles ship); None records the file names.
    """
    from edgehisto.export.gradcam_tf import keras_probabilities, tf_gradcam

    out_dir = bundle.path
    spec = bundle.preprocess
    candidates = [golden_tile(path, spec) for path in sources]
    x_all = normalize(np.stack([resize_tile(tile, spec) for tile in candidates]), spec)
    entry_model, entry_outputs = reference(bundle.entry_stage)
    entry = _stage_model(entry_model, entry_outputs)
    chosen = choose_golden(keras_probabilities(entry, x_all, bundle.stages[bundle.entry_stage].output))
    tiles_dir = out_dir / GOLDEN_DIR / "tiles"
    tiles_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for k, index in enumerate(chosen):
        names.append(f"{GOLDEN_DIR}/tiles/{k:02d}.png")
        ok = cv2.imwrite(str(out_dir / names[-1]), cv2.cvtColor(candidates[index], cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"cannot write {names[-1]}")
    # Expected outputs come from the files as written, read the way the runtime reads them.
    preprocessed = np.stack([load_resized(out_dir / name, spec) for name in names])
    x = normalize(preprocessed, spec)
    int8 = Classifier(bundle, precision="int8", allow_failed_parity=True)
    expected = {"preprocessed": preprocessed}
    for name, stage in bundle.stages.items():
        model, outputs = reference(name)
        probabilities = keras_probabilities(_stage_model(model, outputs), x, stage.output)
        top1 = probabilities.argmax(axis=1)
        expected[f"keras_probabilities__{name}"] = probabilities.astype(np.float32)
        expected[f"keras_top1__{name}"] = top1.astype(np.int64)
        expected[f"keras_gradcam__{name}"] = tf_gradcam(model, stage.gradcam_layer, stage.output, x, top1,
                                                       logits=outputs["logits"])
        activations = int8.activations(x, stage)
        expected[f"int8_probabilities__{name}"] = int8.head(activations, stage)[1]
        key = bundle.golden_activations_key(name)
        if key not in expected:
            expected[key] = activations
    np.savez_compressed(out_dir / EXPECTED, **expected)
    origins = origins or [Path(path).name for path in sources]
    return {
        "tiles": names, "expected": EXPECTED, "origins": [origins[index] for index in chosen],
        "source": "calibration draw from the training split",
        "selection": "round-robin over the Keras-predicted classes of the entry stage, "
                     "largest top-1 margin first",
        "thresholds": Thresholds().to_dict(),
        "int8_portability_max_abs_prob_diff": PORTABILITY_MAX_ABS_PROB_DIFF,
    }


def replace_golden_set(bundle_dir: Path, sources: list[Path], source: str) -> dict:
    """Rewrite an exported bundle's golden set from other tiles; returns the manifest's new ``golden`` entry.

    The embedded BreaKHis model uses this to carry synthetic golden tiles instead of tiles of the
    real data it was trained on (those stay outside the repository and the wheel). The caller
    writes the entry (``bundle.manifest_writer.update_manifest``) so that the new files are hashed.
    """
    from edgehisto.export.parity import KerasReferences

    bundle = load_bundle(bundle_dir, verify=False)
    shutil.rmtree(bundle.file(GOLDEN_DIR), ignore_errors=True)
    return {**write_golden_set(bundle, sources, KerasReferences(bundle).stage), "source": source}


def display_peaks(out_dir: Path, manifest: dict, calibration: np.ndarray) -> dict[str, float]:
    """Fixed overlay scales of single-sigmoid stages: the map value drawn at full colour.

    It is the 95th percentile of the fp32 map peaks on the calibration tiles the model calls
    positive, so a negative tile's weak IDC evidence is drawn faintly instead of being stretched
    to full colour by its own peak. Softmax stages keep per-map scaling (no entry).
    """
    runtime = Classifier(Bundle(Path(out_dir), manifest), precision="fp32", allow_failed_parity=True)
    peaks = {}
    for name, stage in runtime.stages.items():
        if stage.output != "sigmoid":
            continue
        probabilities = runtime.head(runtime.activations(calibration, stage), stage)[1]
        positive = probabilities.argmax(axis=1) == 1
        maps = runtime.gradcam(calibration, name, np.ones(len(calibration), np.int64))
        chosen = maps[positive] if positive.any() else maps
        peaks[name] = float(np.percentile(chosen.reshape(len(chosen), -1).max(axis=1), 95))
        if not peaks[name] > 0:
            # A zero peak would be written and then refused by the manifest's own schema: say why instead.
            raise ExportError(f"stage {name}: the model shows no {stage.class_names[-1]} evidence on any of the "
                              f"{len(calibration)} calibration tiles (every Grad-CAM map is zero), so it has not "
                              "learned what the map would show; train longer or check the data")
    return peaks


def _stage_model(model, outputs: dict):
    import keras

    return keras.Model(model.input, model.get_layer(outputs["probabilities"]).output)
