"""Bundles embedded in the package (``runtime/models/<name>/``) and resolving ``--model``."""

from __future__ import annotations

from pathlib import Path

from edgehisto.errors import BundleNotFound
from edgehisto.runtime.bundle import MANIFEST, Bundle, load_bundle

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
