"""The embeddable runtime API: load a bundle once, classify arrays or files, get Grad-CAM maps.

    from edgehisto.runtime import Classifier
    clf = Classifier("bundles/idc", precision="int8")
    results = clf.classify_paths(["tile.png"], gradcam=True)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgehisto.bundle import tensors
from edgehisto.bundle.images import decode_rgb
from edgehisto.bundle.input_guard import blank_warning
from edgehisto.bundle.manifest import PRECISIONS, Bundle, StageSpec, read_verified
from edgehisto.bundle.outputs import class_probabilities
from edgehisto.bundle.preprocess import normalize, resize_tile
from edgehisto.errors import BundleNotVerified, EdgehistoError
from edgehisto.runtime.gradcam import gradcam, score_seed
from edgehisto.runtime.inputs import MAX_TILE_FILE_BYTES, describe_os_error, read_tile_file
from edgehisto.runtime.registry import resolve_bundle
from edgehisto.runtime.session_contract import check_session
from edgehisto.runtime.sessions import make_session


@dataclass
class StageResult:
    """One stage's output for one tile."""

    stage: str
    label: str
    class_index: int
    probabilities: dict[str, float]
    cam: np.ndarray | None = None  # Grad-CAM at the target layer's resolution (float32)


@dataclass
class TileResult:
    """Everything the runtime says about one tile, and ``error`` if anything about it failed.

    A tile that could not be read or gave non-finite numbers has an ``error`` and no stages; a
    tile classified whose Grad-CAM files could not be written keeps its stages and has an
    ``error`` too. ``gradcam_files`` lists the files written for it.
    """

    path: str
    stages: list[StageResult] = field(default_factory=list)
    error: str | None = None
    image: np.ndarray | None = None  # the resized uint8 RGB model input, kept for overlays
    warning: str | None = None
    gradcam_files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the tile was classified (no error)."""
        return self.error is None

    def to_record(self) -> dict:
        """JSON-ready record: path, label, probabilities (, subtype, subtype_probabilities),
        gradcam_files, error and warning, each only when there is something to say."""
        record: dict = {"path": self.path}
        if self.stages:
            first = self.stages[0]
            record |= {"label": first.label, "probabilities": first.probabilities}
            for routed in self.stages[1:]:
                record["subtype"] = routed.label
                record["subtype_probabilities"] = routed.probabilities
                record["subtype_stage"] = routed.stage
        if self.gradcam_files:
            record["gradcam_files"] = list(self.gradcam_files)
        if self.error is not None:
            record["error"] = self.error
        if self.warning is not None:
            record["warning"] = self.warning
        return record


def parity_problem(bundle: Bundle) -> str | None:
    """Why a bundle must not be used silently (failed or missing parity verdict), or None."""
    verdict = bundle.parity_passed
    if verdict is True:
        return None
    if verdict is None:
        return f"bundle {bundle.path} carries no parity verdict (run edgehisto check-parity --write)"
    return f"bundle {bundle.path} failed its parity gates at export (see its parity.json)"


class Classifier:
    """A loaded bundle with onnxruntime CPU sessions for one precision.

    A bundle whose manifest does not record passed parity gates is refused with
    ``BundleNotVerified``; ``allow_failed_parity=True`` uses it anyway, and every result then
    carries a ``warning`` saying so.
    """

    def __init__(self, bundle: Bundle | str | Path, precision: str = "fp32", threads: int | None = None,
                 allow_failed_parity: bool = False):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        # A directory, or an embedded model's name as the CLI takes it (``idc``, ``breakhis``).
        self.bundle = bundle if isinstance(bundle, Bundle) else resolve_bundle(bundle)
        problem = parity_problem(self.bundle)
        if problem and not allow_failed_parity:
            raise BundleNotVerified(f"{problem}; refusing to use it (--allow-failed-parity overrides)")
        self.warning = f"{problem}; used because parity checks were overridden" if problem else None
        self.precision = precision
        self.spec = self.bundle.preprocess
        self.expected_input = self.bundle.expected_input
        self.stages = self.bundle.stages
        self._threads = threads
        self._sessions: dict[str, ort.InferenceSession] = {}
        self._lock = threading.Lock()

    def session(self, relative: str, role: str, stage: StageSpec) -> ort.InferenceSession:
        """The onnxruntime session of one bundle file, created once (thread-safe) and cached.

        The session is built from the very bytes whose sha256 is checked here, so a file swapped
        after the bundle was loaded is refused, not run; its inputs and outputs are then checked
        against the manifest.
        """
        with self._lock:
            if relative not in self._sessions:
                session = make_session(read_verified(self.bundle, relative), self._threads)
                check_session(session, relative, role, stage, self.spec.input_size,
                              self.bundle.stages[stage.name].activations_shape)
                self._sessions[relative] = session
            return self._sessions[relative]

    # -- tensors in, numbers out ---------------------------------------------------------
    def activations(self, x: np.ndarray, stage: StageSpec) -> np.ndarray:
        """Target-layer activations of a preprocessed batch (N, h, w, c)."""
        session = self.session(stage.backbone(self.precision), "backbone", stage)
        return session.run([tensors.ACTIVATIONS], {tensors.IMAGE: x})[0]

    def head(self, activations: np.ndarray, stage: StageSpec) -> tuple[np.ndarray, np.ndarray]:
        """(logits, probabilities as (N, K)) of a stage's head."""
        logits, probabilities = self.session(stage.files["head"], "head", stage).run(
            [tensors.LOGITS, tensors.PROBABILITIES], {tensors.ACTIVATIONS: activations})
        return logits, class_probabilities(probabilities, stage.output)

    def gradients(self, activations: np.ndarray, stage: StageSpec, class_indices: np.ndarray) -> np.ndarray:
        """d(class score)/d(activations) for the given class of each row (exact, from ONNX)."""
        seed = score_seed(stage.output, len(stage.class_names), class_indices)
        return self.session(stage.files["head_gradient"], "head_gradient", stage).run(
            [tensors.GRADIENT], {tensors.ACTIVATIONS: activations, tensors.SEED: seed})[0]

    def gradcam(self, x: np.ndarray, stage_name: str | None = None, class_indices=None) -> np.ndarray:
        """Grad-CAM maps (N, h, w) of a preprocessed batch; default class = the predicted one."""
        stage = self.stages[stage_name or self.bundle.entry_stage]
        acts = self.activations(x, stage)
        if class_indices is None:
            class_indices = self.head(acts, stage)[1].argmax(axis=1)
        return gradcam(acts, self.gradients(acts, stage, np.asarray(class_indices)))

    # -- images in, results out ----------------------------------------------------------
    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(resized uint8, float model input) for 8-bit RGB arrays."""
        resized = np.stack([resize_tile(np.asarray(image), self.spec) for image in images])
        return resized, normalize(resized, self.spec)

    def classify_arrays(self, images: Sequence[np.ndarray], gradcam: bool = False) -> list[TileResult]:
        """Classify 8-bit RGB arrays (H, W, 3) held in memory."""
        resized, x = self.preprocess(images)
        results = [TileResult(path=f"<array {i}>", image=resized[i],
                              warning=self._warning_for(np.asarray(image)))
                   for i, image in enumerate(images)]
        self._run(x, results, gradcam)
        _refuse_non_finite(results)
        return results

    def classify_tensor(self, x: np.ndarray, gradcam: bool = False,
                        backbone_outputs: dict[str, np.ndarray] | None = None) -> list[TileResult]:
        """Classify an already preprocessed float batch (N, h, w, 3), routing included.

        ``backbone_outputs``: backbone file -> its activations of all of ``x``, already computed
        (``verify`` has them), so that a backbone is not run twice on the same batch.
        """
        results = [TileResult(path=f"<row {i}>", warning=self.warning) for i in range(len(x))]
        self._run(x, results, gradcam, dict(backbone_outputs or {}))
        _refuse_non_finite(results)
        return results

    def classify_paths(self, paths: Iterable[str | Path], gradcam: bool = False,
                       batch_size: int = 32, max_file_bytes: int = MAX_TILE_FILE_BYTES) -> list[TileResult]:
        """Classify image files in batches; a bad file gets an ``error``, the rest carry on.

        Only regular files of at most ``max_file_bytes`` are read (checked with ``stat``
        first); results come back in the order of ``paths``.
        """
        sources = [(str(path), lambda path=path: read_tile_file(path, max_file_bytes)) for path in paths]
        return self._classify_sources(sources, gradcam, batch_size)

    def classify_bytes(self, named: Iterable[tuple[str, bytes]], gradcam: bool = False,
                       batch_size: int = 32) -> list[TileResult]:
        """Classify encoded image files held in memory, as (name, bytes) pairs (e.g. uploads).

        Each result's ``path`` is the given name; decoding, checks and errors are those of
        ``classify_paths``, so a file gives the same record whichever way it arrives.
        """
        return self._classify_sources([(name, lambda data=data: data) for name, data in named], gradcam, batch_size)

    def _classify_sources(self, sources: list[tuple[str, Callable[[], bytes]]], gradcam: bool,
                          batch_size: int) -> list[TileResult]:
        """Read, decode and classify (name, reader) pairs in batches; a bad one gets an ``error``."""
        results = []
        for chunk in _chunks(sources, batch_size):
            loaded, batch = [], []
            for name, read in chunk:
                result = TileResult(path=name, warning=self.warning)
                try:
                    rgb = decode_rgb(read(), max_pixels=self.spec.max_pixels, min_side=self.spec.min_side)
                    result.warning = self._warning_for(rgb)
                    result.image = resize_tile(rgb, self.spec)
                except EdgehistoError as error:
                    result.error = str(error)
                except OSError as error:
                    result.error = f"cannot read file: {describe_os_error(error, name)}"
                else:
                    loaded.append(result)
                batch.append(result)
            if loaded:
                x = normalize(np.stack([r.image for r in loaded]), self.spec)
                self._run(x, loaded, gradcam)
                _refuse_non_finite(loaded)
            results.extend(batch)
        return results

    def _warning_for(self, rgb: np.ndarray) -> str | None:
        """The bundle-level warning and the input guard's (``bundle/input_guard.py``), joined."""
        guard = self.expected_input.check(*rgb.shape[:2]) if self.expected_input else None
        return "; ".join(w for w in (self.warning, guard, blank_warning(rgb)) if w) or None

    def _run(self, x: np.ndarray, results: list[TileResult], want_cam: bool,
             acts_cache: dict[str, np.ndarray] | None = None) -> None:
        """Run the entry stage, then each routed stage on the rows routed to it."""
        rows = np.arange(len(results))
        stage_name, acts_cache = self.bundle.entry_stage, {} if acts_cache is None else acts_cache
        pending = [(stage_name, rows)]
        while pending:
            stage_name, rows = pending.pop(0)
            stage = self.stages[stage_name]
            backbone = stage.backbone(self.precision)
            if backbone in acts_cache:  # a shared backbone (multitask) runs once per batch
                acts = acts_cache[backbone][rows]
            else:
                acts = self.activations(x[rows], stage)
                if len(rows) == len(x):
                    acts_cache[backbone] = acts
            _, probabilities = self.head(acts, stage)
            predicted = probabilities.argmax(axis=1)
            cams = gradcam(acts, self.gradients(acts, stage, predicted)) if want_cam else None
            for i, row in enumerate(rows):
                results[row].stages.append(StageResult(
                    stage_name, stage.class_names[predicted[i]], int(predicted[i]),
                    {n: float(p) for n, p in zip(stage.class_names, probabilities[i], strict=True)},
                    None if cams is None else cams[i],
                ))
            for label, next_stage in self.bundle.routing.get(stage_name, {}).items():
                index = stage.class_names.index(label)
                routed = rows[predicted == index]
                if len(routed):
                    pending.append((next_stage, routed))


def _refuse_non_finite(results: list[TileResult]) -> None:
    """Turn a tile whose probabilities or Grad-CAM hold NaN or inf into an error, never a label."""
    for result in results:
        for stage in result.stages:
            finite = np.isfinite(list(stage.probabilities.values())).all()
            if not finite or (stage.cam is not None and not np.isfinite(stage.cam).all()):
                what = "probabilities" if not finite else "Grad-CAM map"
                result.error = f"NaN or inf in the {stage.stage} stage's {what}; no label given"
                result.stages = []
                break


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]
