"""Bundles embedded in the package (``runtime/models/<name>/``) and resolving ``--model``."""

from __future__ import annotations

from pathlib import Path

from edgehisto.bundle.manifest import MANIFEST, Bundle, load_bundle
from edgehisto.errors import BundleNotFound

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = "idc-default"
BREAKHIS_MODEL = "breakhis"
# Short names users type (``--model idc``); each maps to an embedded bundle's directory name.
ALIASES = {"idc": DEFAULT_MODEL}


def embedded_bundles() -> dict[str, Path]:
    """Name -> directory of every bundle shipped inside the package."""
    if not MODELS_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(MODELS_DIR.iterdir()) if (p / MANIFEST).is_file()}


def resolve_bundle(model: str | Path | None) -> Bundle:
    """Load ``model`` (a directory or an embedded bundle's name), or the embedded default."""
    embedded = embedded_bundles()
    if model is None:
        if DEFAULT_MODEL not in embedded:
            raise BundleNotFound("no --model given and no embedded default model is installed")
        return load_bundle(embedded[DEFAULT_MODEL])
    name = ALIASES.get(str(model), str(model))
    if not Path(model).exists() and name in embedded:
        return load_bundle(embedded[name])
    return load_bundle(model)


def names_of(bundle_name: str) -> list[str]:
    """Every name that selects an embedded bundle: its aliases, then its directory name."""
    return [alias for alias, target in ALIASES.items() if target == bundle_name] + [bundle_name]


def describe_embedded(verify: bool = True) -> list[dict]:
    """One record per embedded bundle: identity, classes, stored parity verdict, verify here."""
    import hashlib

    from edgehisto.errors import EdgehistoError
    from edgehisto.runtime.verify import cpu_kind, verify_bundle

    rows = []
    for name, path in embedded_bundles().items():
        bundle = load_bundle(path)
        verified = None
        if verify:
            try:
                verified = verify_bundle(bundle).passed
            except EdgehistoError:
                verified = False
        rows.append({
            "name": name, "names": names_of(name), "default": name == DEFAULT_MODEL, "path": str(path),
            "task": bundle.task, "arch": bundle.manifest.get("arch", "single"),
            "expects": (bundle.manifest.get("expected_input") or {}).get("description"),
            "precisions": [p for p in ("fp32", "int8") if _ships(bundle, p)],
            "manifest_sha256": hashlib.sha256((path / MANIFEST).read_bytes()).hexdigest(),
            "input_size": list(bundle.preprocess.input_size),
            "classes": {s: v["class_names"] for s, v in bundle.manifest["stages"].items()},
            "parity_passed": bundle.manifest.get("parity", {}).get("passed"),
            "verified_here": verified, "cpu": cpu_kind(),
            "size_mb": round(sum(e["bytes"] for e in bundle.manifest["files"].values()) / 1e6, 2),
            "model_card": str(path / "MODEL_CARD.md") if (path / "MODEL_CARD.md").is_file() else None,
        })
    return rows


def _ships(bundle: Bundle, precision: str) -> bool:
    """Whether every stage's backbone of this precision is present in the bundle directory."""
    return all(bundle.file(stage.backbone(precision)).is_file() for stage in bundle.stages.values())
