"""Plain-code validation of a manifest before anything uses it (no validator library on a Pi).

Every check raises ``UnsupportedManifest`` with a one-line message naming the field, so a
malformed or hostile manifest ends as exit code 2, never as a traceback further down. The same
rules are published for other implementations as JSON Schema (``manifest.schema.json`` beside
this module); ``tests/test_hostile_bundles.py`` checks that the two agree.
"""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath

from edgehisto.bundle.input_guard import ExpectedInput
from edgehisto.bundle.resize import RESIZE_METHODS
from edgehisto.errors import UnsupportedManifest

SCHEMA_FILE = Path(__file__).with_name("manifest.schema.json")
OUTPUT_KINDS = ("sigmoid", "softmax")
# Bounds that keep one tile's memory sane: a 4096x4096x3 float32 input is already 200 MB.
MAX_SIDE = 4096
MAX_PIXELS_LIMIT = 1_000_000_000


def _fail(field: str, problem: str) -> None:
    message = f"manifest field {field}: {problem}"
    # Field names come from the manifest's own keys: escape what would break the one line.
    raise UnsupportedManifest("".join(c if c.isprintable() else repr(c)[1:-1] for c in message))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _sides(field: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not (isinstance(value, list) and len(value) == 2 and all(_is_int(v) and 1 <= v <= MAX_SIDE for v in value)):
        _fail(field, f"expected [height, width], integers from 1 to {MAX_SIDE}, got {value!r}")


def _triple(field: str, value, positive: bool) -> None:
    if not (isinstance(value, list) and len(value) == 3 and all(_is_number(v) for v in value)):
        _fail(field, f"expected 3 finite numbers, got {value!r}")
    if positive and not all(v > 0 for v in value):
        _fail(field, f"every value must be > 0, got {value!r}")


def validate_preprocess(spec) -> None:
    """Types, ranges and supported values of the preprocessing spec."""
    if not isinstance(spec, dict):
        _fail("preprocess", "expected an object")
    _sides("preprocess.input_size", spec.get("input_size"))
    _sides("preprocess.pad_to", spec.get("pad_to"), allow_none=True)
    if not (_is_number(spec.get("scale")) and spec["scale"] > 0):
        _fail("preprocess.scale", f"expected a finite number > 0, got {spec.get('scale')!r}")
    _triple("preprocess.mean", spec.get("mean"), positive=False)
    _triple("preprocess.std", spec.get("std"), positive=True)
    if spec.get("resize_method") not in RESIZE_METHODS:
        _fail("preprocess.resize_method", f"expected one of {RESIZE_METHODS}, got {spec.get('resize_method')!r}")
    # Fields the runtime does not implement are refused, not ignored.
    for field, supported in (("color_order", "RGB"), ("layout", "NHWC"), ("dtype", "float32")):
        if spec.get(field) != supported:
            _fail(f"preprocess.{field}", f"this runtime implements only {supported!r}, got {spec.get(field)!r}")
    if not (_is_int(spec.get("pad_value")) and 0 <= spec["pad_value"] <= 255):
        _fail("preprocess.pad_value", f"expected an integer 0-255, got {spec.get('pad_value')!r}")
    if not (_is_int(spec.get("min_side")) and 1 <= spec["min_side"] <= MAX_SIDE):
        _fail("preprocess.min_side", f"expected an integer 1-{MAX_SIDE}, got {spec.get('min_side')!r}")
    if not (_is_int(spec.get("max_pixels")) and 1 <= spec["max_pixels"] <= MAX_PIXELS_LIMIT):
        _fail("preprocess.max_pixels", f"expected an integer 1-{MAX_PIXELS_LIMIT:,}, got {spec.get('max_pixels')!r}")


def safe_relative_path(field: str, value) -> str:
    """A bundle-relative POSIX path: not absolute, no ``..``, no empty parts; returns it."""
    if not isinstance(value, str) or not value:
        _fail(field, f"expected a relative path, got {value!r}")
    path = PurePosixPath(value)
    if path.is_absolute() or "\\" in value or any(part in ("..", ".", "") for part in value.split("/")):
        _fail(field, f"{value!r} must stay inside the bundle (relative, no '..')")
    return value


def validate_stages(manifest: dict) -> None:
    """Stages, their files, the entry stage and routing (labels exist, targets exist, no cycle)."""
    stages, entry = manifest["stages"], manifest["entry_stage"]
    if not isinstance(stages, dict) or not stages:
        _fail("stages", "expected a non-empty object")
    if not isinstance(entry, str) or entry not in stages:
        _fail("entry_stage", f"expected the name of a stage, got {entry!r}")
    listed = manifest["files"]
    for name, stage in stages.items():
        if not isinstance(stage, dict):
            _fail(f"stages.{name}", "expected an object")
        classes = stage.get("class_names")
        if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) and c for c in classes)
                and len(set(classes)) == len(classes)):
            _fail(f"stages.{name}.class_names", f"expected 2 or more distinct names, got {classes!r}")
        if stage.get("output") not in OUTPUT_KINDS:
            _fail(f"stages.{name}.output", f"expected one of {OUTPUT_KINDS}, got {stage.get('output')!r}")
        if stage["output"] == "sigmoid" and len(classes) != 2:
            _fail(f"stages.{name}.class_names", "a sigmoid stage has exactly 2 classes")
        if not isinstance(stage.get("gradcam_layer"), str):
            _fail(f"stages.{name}.gradcam_layer", "expected a layer name")
        shape = stage.get("activations_shape")
        if shape is not None and not (isinstance(shape, list) and len(shape) == 3
                                      and all(_is_int(v) and v >= 1 for v in shape)):
            _fail(f"stages.{name}.activations_shape", f"expected [h, w, channels], got {shape!r}")
        peak = stage.get("gradcam_display_peak")
        if peak is not None and not (_is_number(peak) and peak > 0):
            _fail(f"stages.{name}.gradcam_display_peak", f"expected a number > 0, got {peak!r}")
        files = stage.get("files")
        if not isinstance(files, dict):
            _fail(f"stages.{name}.files", "expected an object")
        for role, relative in files.items():
            safe_relative_path(f"stages.{name}.files.{role}", relative)
            if relative not in listed:  # every file the runtime loads is hashed
                _fail(f"stages.{name}.files.{role}", f"{relative!r} is not listed (with its sha256) in files")
    _validate_routing(manifest.get("routing", {}), stages, entry)


def _validate_routing(routing, stages: dict, entry: str) -> None:
    if not isinstance(routing, dict):
        _fail("routing", "expected an object")
    for stage, routes in routing.items():
        if stage not in stages or not isinstance(routes, dict):
            _fail(f"routing.{stage}", "routes from an unknown stage, or is not an object")
        for label, target in routes.items():
            if label not in stages[stage]["class_names"]:
                _fail(f"routing.{stage}.{label}", f"{label!r} is not a class of {stage!r}")
            if target not in stages:
                _fail(f"routing.{stage}.{label}", f"routes to unknown stage {target!r}")
    # A DAG from the entry stage: a cycle would loop forever.
    visiting, done = set(), set()

    def visit(stage: str) -> None:
        if stage in visiting:
            _fail("routing", f"stage {stage!r} is reached again along a route (a cycle)")
        if stage in done:
            return
        visiting.add(stage)
        for target in routing.get(stage, {}).values():
            visit(target)
        visiting.discard(stage)
        done.add(stage)

    visit(entry)


def validate_files(manifest: dict) -> None:
    """Every ``files`` entry: a safe relative path with a hex sha256."""
    files = manifest["files"]
    if not isinstance(files, dict):
        _fail("files", "expected an object")
    for relative, entry in files.items():
        safe_relative_path(f"files[{relative!r}]", relative)
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            _fail(f"files[{relative!r}].sha256", "expected 64 lowercase hex characters")


def validate_manifest(manifest) -> None:
    """Validate a parsed manifest (schema version 1); raises ``UnsupportedManifest``."""
    if not isinstance(manifest, dict):
        _fail("(top level)", "expected an object")
    for key in ("task", "preprocess", "stages", "entry_stage", "files"):
        if key not in manifest:
            _fail(key, "missing")
    if not isinstance(manifest["task"], str):
        _fail("task", f"expected a string, got {manifest['task']!r}")
    validate_files(manifest)
    validate_preprocess(manifest["preprocess"])
    validate_stages(manifest)
    _validate_golden(manifest)
    ExpectedInput.from_manifest(manifest)


def _validate_golden(manifest: dict) -> None:
    """The golden set's files, which ``verify`` reads, are hashed files inside the bundle."""
    golden = manifest.get("golden")
    if golden is None:
        return
    if not isinstance(golden, dict) or not isinstance(golden.get("tiles"), list):
        _fail("golden", "expected an object with a list of tiles")
    for index, relative in enumerate([*golden["tiles"], golden.get("expected")]):
        field = f"golden.tiles[{index}]" if index < len(golden["tiles"]) else "golden.expected"
        if safe_relative_path(field, relative) not in manifest["files"]:
            _fail(field, f"{relative!r} is not listed (with its sha256) in files")
