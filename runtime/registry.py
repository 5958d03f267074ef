"""Bundles embedded in the package (``runtime/models/<name>/``) and resolving ``--model``."""

from __future__ import annotations

from pathlib import Path

from edgehisto.bundle.manifest import MANIFEST, Bundle, load_bundle
from edgehisto.errors import BundleNotFound

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = "idc-default"


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
    if not Path(model).exists() and str(model) in embedded:
        return load_bundle(embedded[str(model)])
    return load_bundle(model)


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
            "name": name, "default": name == DEFAULT_MODEL, "path": str(path), "task": bundle.task,
            "manifest_sha256": hashlib.sha256((path / MANIFEST).read_bytes()).hexdigest(),
            "input_size": list(bundle.preprocess.input_size),
            "classes": {s: v["class_names"] for s, v in bundle.manifest["stages"].items()},
            "parity_passed": bundle.manifest.get("parity", {}).get("passed"),
            "verified_here": verified, "cpu": cpu_kind(),
            "size_mb": round(sum(e["bytes"] for e in bundle.manifest["files"].values()) / 1e6, 2),
            "model_card": str(path / "MODEL_CARD.md") if (path / "MODEL_CARD.md").is_file() else None,
        })
    return rows
