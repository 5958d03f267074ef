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
    """Load ``model`` (a directory, or an embedded bundle's name in any case), or the embedded default.

    Raises:
        BundleNotFound: neither a directory nor a name; the message suggests the nearest name.
    """
    embedded = embedded_bundles()
    if model is None:
        if DEFAULT_MODEL not in embedded:
            raise BundleNotFound("no --model given and no embedded default model is installed")
        return load_bundle(embedded[DEFAULT_MODEL])
    if Path(model).exists():  # a directory of that name wins over an embedded name
        return load_bundle(model)
    names = {name.lower(): name for name in embedded} | {
        alias.lower(): target for alias, target in ALIASES.items() if target in embedded}
    key = str(model).lower()
    if key in names:
        return load_bundle(embedded[names[key]])
    if any(sep in str(model) for sep in ("/", "\\")):
        return load_bundle(model)  # a path that is not there: load_bundle says so
    import difflib

    near = difflib.get_close_matches(key, list(names), n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    raise BundleNotFound(f"no embedded model or bundle directory named {str(model)!r}{hint} "
                         f"(embedded models: {', '.join(sorted({*ALIASES, *embedded}))})")


def names_of(bundle_name: str) -> list[str]:
    """Every name that selects an embedded bundle: its aliases, then its directory name."""
    return [alias for alias, target in ALIASES.items() if target == bundle_name] + [bundle_name]


def describe_embedded(verify: bool = True) -> list[dict]:
    """One record per embedded bundle: identity, classes, stored parity verdict, verify here."""
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
            "task": bundle.task, "arch": bundle.arch, "expects": bundle.expects,
            "precisions": [p for p in ("fp32", "int8") if _ships(bundle, p)],
            "manifest_sha256": bundle.manifest_sha256,
            "input_size": list(bundle.preprocess.input_size),
            "classes": bundle.class_names,
            "parity_passed": bundle.parity_passed,
            "verified_here": verified, "cpu": cpu_kind(),
            **_sizes(bundle),
            "model_card": str(path / "MODEL_CARD.md") if (path / "MODEL_CARD.md").is_file() else None,
        })
    return rows


def _sizes(bundle: Bundle) -> dict:
    """Megabytes on disk (the listed files that are present) and the listed files that are absent.

    A development bundle lists its Keras reference and TFLite files; an installed copy does not ship them.
    """
    entries = bundle.files
    present = {name: e.bytes for name, e in entries.items() if bundle.file(name).is_file()}
    return {"size_mb": round(sum(present.values()) / 1e6, 2),
            "listed_absent": sorted(set(entries) - set(present)),
            "listed_absent_mb": round(sum(e.bytes for n, e in entries.items() if n not in present) / 1e6, 2)}


def _ships(bundle: Bundle, precision: str) -> bool:
    """Whether every stage's backbone of this precision is present in the bundle directory."""
    return all(bundle.file(stage.backbone(precision)).is_file() for stage in bundle.stages.values())
