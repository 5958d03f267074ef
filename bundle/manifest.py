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
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from edgehisto.bundle.preprocess import PreprocessSpec
from edgehisto.bundle.schema import validate_manifest
from edgehisto.errors import BundleIntegrityError, BundleNotFound, UnsupportedManifest

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
PRECISIONS = ("fp32", "int8")
STAGE_KEYS = ("class_names", "output", "gradcam_layer", "files")
FILE_ROLES = ("backbone_fp32", "backbone_int8", "head", "head_gradient")
REFERENCE_DIR = "reference/"


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

    def backbone(self, precision: str) -> str:
        """The backbone file of a precision (``fp32`` or ``int8``)."""
        return self.files[f"backbone_{precision}"]


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
        return {
            name: StageSpec(name, tuple(s["class_names"]), s["output"], s["gradcam_layer"], dict(s["files"]),
                            s.get("tflite_output", "output_0"), s.get("gradcam_display_peak"))
            for name, s in self.manifest["stages"].items()
        }

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
        _check_stages(manifest)
        validate_manifest(manifest)
        PreprocessSpec.from_dict(manifest["preprocess"])
    except UnsupportedManifest as error:
        raise UnsupportedManifest(f"{manifest_path}: {error}") from None
    bundle = Bundle(path, manifest)
    if verify:
        verify_files(bundle)
    return bundle


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
