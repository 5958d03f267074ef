"""Reading a bundle: ``manifest.json`` (the contract) plus model files checked by sha256.

Manifest schema 1, the keys the runtime relies on::

    schema_version: 1
    task: "idc" | ...
    preprocess: PreprocessSpec as a dict (the single home of the preprocessing spec)
    entry_stage: name of the first stage to run
    routing: {stage: {label: next_stage}} (empty for a single-stage model)
    stages: {name: {class_names, output ("sigmoid"|"softmax"), gradcam_layer,
                    activations_shape, n_params,
                    files: {backbone_fp32, backbone_int8, head, head_gradient}}}
    files: {relative path: {sha256, bytes}}

Stages that name the same backbone file share it (the runtime runs it once per batch).

Code outside this room reads the manifest through ``Bundle``'s and ``StageSpec``'s typed
accessors, never as a dict; ``bundle/manifest_writer.py`` is its one writer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from edgehisto.bundle.input_guard import ExpectedInput
from edgehisto.bundle.manifest_entries import FileEntry, GoldenSet
from edgehisto.bundle.preprocess import PreprocessSpec
from edgehisto.bundle.schema import validate_manifest
from edgehisto.errors import BundleIntegrityError, BundleNotFound, UnsupportedManifest

MANIFEST = "manifest.json"
MODEL_CARD = "model_card.json"  # the card's data, written by release; its ``caveat`` is read here
SCHEMA_VERSION = 1
PRECISIONS = ("fp32", "int8")
STAGE_KEYS = ("class_names", "output", "gradcam_layer", "files")
FILE_ROLES = ("backbone_fp32", "backbone_int8", "head", "head_gradient")
REFERENCE_DIR = "reference/"
TEST_SPLIT = "reference/test_split.csv"
# The output layers of a stage's Keras reference when export recorded none (a single-model run).
REFERENCE_OUTPUTS = {"logits": "logits", "probabilities": "probabilities"}


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class StageSpec:
    """One classifier stage of a bundle."""

    name: str
    class_names: tuple[str, ...]
    output: str
    gradcam_layer: str
    files: dict[str, str]
    tflite_output: str = "output_0"
    # The map value drawn at full colour in overlays (None: each map scaled by its own peak).
    gradcam_display_peak: float | None = None
    activations_shape: tuple[int, ...] | None = None  # (h, w, channels) of the Grad-CAM layer
    reference_keras: str | None = None  # the Keras model the parity gates compare against
    # Its logits and probabilities layers (a multitask model names one pair per stage).
    reference_outputs: dict[str, str] = field(default_factory=lambda: dict(REFERENCE_OUTPUTS))

    def backbone(self, precision: str) -> str:
        """The backbone file of a precision (``fp32`` or ``int8``)."""
        return self.files[f"backbone_{precision}"]

    @classmethod
    def from_entry(cls, name: str, entry: dict) -> StageSpec:
        """A stage from its manifest entry."""
        shape = entry.get("activations_shape")
        return cls(name, tuple(entry["class_names"]), entry["output"], entry["gradcam_layer"], dict(entry["files"]),
                   entry.get("tflite_output", "output_0"), entry.get("gradcam_display_peak"),
                   tuple(shape) if shape is not None else None, entry.get("reference_keras"),
                   {**REFERENCE_OUTPUTS, **entry.get("reference_outputs", {})})


@dataclass(frozen=True)
class Bundle:
    """A verified bundle directory and its parsed manifest."""

    path: Path
    manifest: dict

    @property
    def task(self) -> str:
        """The task the bundle was trained for (``idc``, ``breakhis``)."""
        return self.manifest["task"]

    @property
    def preprocess(self) -> PreprocessSpec:
        """The preprocessing spec, the single home of how an image becomes a tensor."""
        return PreprocessSpec.from_dict(self.manifest["preprocess"])

    @property
    def stages(self) -> dict[str, StageSpec]:
        """Every stage by name, in manifest order."""
        return {name: StageSpec.from_entry(name, entry) for name, entry in self.manifest["stages"].items()}

    @property
    def class_names(self) -> dict[str, list[str]]:
        """Every stage's class names, in manifest order."""
        return {name: list(stage.class_names) for name, stage in self.stages.items()}

    @property
    def entry_stage(self) -> str:
        """The stage every tile runs first."""
        return self.manifest["entry_stage"]

    @property
    def routing(self) -> dict[str, dict[str, str]]:
        """``{stage: {label: next stage}}``; empty for a single-stage model."""
        return self.manifest.get("routing", {})

    def file(self, relative: str) -> Path:
        """The path of a file named relative to the bundle."""
        return self.path / relative

    @property
    def manifest_sha256(self) -> str:
        """Hex sha256 of the manifest file: the identity of the bundle that reports and rows name."""
        return sha256_of(self.path / MANIFEST)

    @property
    def name(self) -> str:
        """The bundle's recorded name (its directory name when it records none)."""
        return self.manifest.get("name", self.path.name)

    @property
    def arch(self) -> str:
        """``single``, or how several stages are built (``hierarchy``, ``multitask``)."""
        return self.manifest.get("arch", "single")

    @property
    def caveat(self) -> str | None:
        """The model card's one-line warning against trusting a label (``model_card.json``), if it has one."""
        try:
            card = json.loads((self.path / MODEL_CARD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        line = card.get("caveat") if isinstance(card, dict) else None
        return line if isinstance(line, str) and line else None

    @property
    def expected_input(self) -> ExpectedInput | None:
        """The kind of image the model was trained on, or None when the bundle declares none."""
        return ExpectedInput.from_manifest(self.manifest)

    @property
    def expects(self) -> str | None:
        """What the model expects to see, in words (None when the bundle declares nothing)."""
        expected = self.expected_input
        return expected.description if expected else None

    @property
    def parity_passed(self) -> bool | None:
        """The stored parity verdict: True, False, or None when parity was never recorded."""
        return self.manifest.get("parity", {}).get("passed")

    @property
    def golden(self) -> GoldenSet | None:
        """The golden set ``verify`` replays, or None for a bundle exported without one."""
        entry = self.manifest.get("golden")
        return GoldenSet(entry) if entry else None

    @property
    def files(self) -> dict[str, FileEntry]:
        """Every listed file (relative path -> sha256 and size)."""
        return {relative: FileEntry(entry["sha256"], entry.get("bytes"))
                for relative, entry in self.manifest["files"].items()}

    @property
    def test_split(self) -> Path:
        """The held-out listing of the run the bundle came from (``relpath,label`` rows; may be absent)."""
        return self.file(self.manifest.get("reference", {}).get("test_split", TEST_SPLIT))

    @property
    def reference_data_root(self) -> Path:
        """The data root the held-out listing is relative to, as export recorded it."""
        return Path(self.manifest.get("reference", {}).get("data_root", ""))

    @property
    def training_seed(self) -> int:
        """The seed training ran with (0 when unrecorded)."""
        return int(self.manifest.get("training", {}).get("config", {}).get("seed", 0))

    def quantization(self, stage: str) -> dict:
        """The int8 quantisation export recorded for a stage (empty when unrecorded)."""
        return dict(self.manifest.get("quantization", {}).get(stage, {}))

    @property
    def exported_at(self) -> str | None:
        """When export wrote the bundle (ISO 8601, ``provenance.created``), if recorded."""
        return self.manifest.get("provenance", {}).get("created")

    @property
    def made_with(self) -> dict[str, str]:
        """Package versions of the exporting machine (``provenance.versions``; empty if unrecorded)."""
        return dict(self.manifest.get("provenance", {}).get("versions", {}))

    def golden_activations_key(self, stage: str) -> str:
        """The golden set's key of a stage's recorded int8 activations (the first stage on its backbone)."""
        stages = self.stages
        backbone = stages[stage].backbone("int8")
        first = next(name for name, spec in stages.items() if spec.backbone("int8") == backbone)
        return f"int8_activations__{first}"


def load_bundle(path: str | Path, verify: bool = True) -> Bundle:
    """Read and validate a bundle; with ``verify`` every listed file's sha256 is checked.

    Raises:
        BundleNotFound: no directory or no manifest.
        UnsupportedManifest: unknown schema version or a malformed manifest.
        BundleIntegrityError: a listed file is missing or its sha256 differs.
    """
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BundleNotFound(f"no bundle at {path} (missing {MANIFEST})")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UnsupportedManifest(f"{manifest_path} is not valid JSON: {error}") from None
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if isinstance(version, bool) or version != SCHEMA_VERSION:  # JSON true == 1 in Python
        raise UnsupportedManifest(
            f"{manifest_path} has schema_version {version!r}; this edgehisto reads {SCHEMA_VERSION}"
        )
    try:
        check_manifest(manifest)
    except UnsupportedManifest as error:
        raise UnsupportedManifest(f"{manifest_path}: {error}") from None
    bundle = Bundle(path, manifest)
    if verify:
        verify_files(bundle)
    return bundle


def check_manifest(manifest: dict) -> None:
    """Every check ``load_bundle`` makes of a manifest with a known schema version; raises ``UnsupportedManifest``."""
    _check_stages(manifest)
    validate_manifest(manifest)
    PreprocessSpec.from_dict(manifest["preprocess"])


def _check_stages(manifest: dict) -> None:
    """Raise ``UnsupportedManifest`` for stage entries that lack a key or a file role."""
    stages = manifest.get("stages")
    for name, stage in (stages.items() if isinstance(stages, dict) else ()):
        if not isinstance(stage, dict) or not isinstance(stage.get("files", {}), dict):
            continue  # the schema check names the field
        lacking = [key for key in STAGE_KEYS if key not in stage]
        lacking += [f"files.{role}" for role in FILE_ROLES if role not in stage.get("files", {})]
        if lacking:
            raise UnsupportedManifest(f"stage {name!r} lacks {', '.join(lacking)}")


def runtime_needs(relative: str) -> bool:
    """Whether the runtime (classify, verify) reads a bundle file.

    The Keras reference, the held-out listing and the TFLite files serve the parity gates and
    bench on a development machine; an installed runtime (the wheel, a Raspberry Pi) may lack them.
    """
    return not (relative.startswith(REFERENCE_DIR) or relative.endswith(".tflite"))


def read_verified(bundle: Bundle, relative: str) -> bytes:
    """The bytes of one listed file, checked against its sha256: what is hashed is what runs.

    Raises:
        BundleIntegrityError: the file is not listed, missing, outside the bundle or changed.
    """
    entry = bundle.manifest["files"].get(relative)
    file = bundle.file(relative)
    if entry is None:
        raise BundleIntegrityError(f"bundle file {relative} is not listed in the manifest")
    if not file.resolve().is_relative_to(bundle.path.resolve()) or not file.is_file():
        raise BundleIntegrityError(f"bundle file {relative} is missing or resolves outside the bundle")
    data = file.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise BundleIntegrityError(f"bundle file {relative} changed since its sha256 was checked")
    return data


def verify_files(bundle: Bundle) -> None:
    """Check every listed file matches its sha256; only files the runtime needs must be present."""
    for relative, entry in bundle.manifest["files"].items():
        file = bundle.file(relative)
        if not file.resolve().is_relative_to(bundle.path.resolve()):
            raise BundleIntegrityError(f"bundle file {relative} resolves outside the bundle (a link)")
        if not file.is_file():
            if not runtime_needs(relative):
                continue
            raise BundleIntegrityError(f"bundle file {relative} is missing from {bundle.path}")
        actual = sha256_of(file)
        if actual != entry["sha256"]:
            raise BundleIntegrityError(
                f"bundle file {relative} has sha256 {actual[:12]}..., manifest says {entry['sha256'][:12]}..."
            )
