"""The one writer of a bundle's ``manifest.json``: export, parity and release all write through here.

A manifest is checked as ``load_bundle`` checks it before it is written, so no command leaves a
bundle behind that the runtime would refuse. The bytes are ``json.dumps(manifest, indent=2)`` and a
newline, the formatting every shipped manifest has (its sha256 is the bundle's identity).
"""

from __future__ import annotations

import json
from pathlib import Path

from edgehisto.bundle.manifest import MANIFEST, SCHEMA_VERSION, check_manifest, sha256_of
from edgehisto.errors import UnsupportedManifest

# Reports written beside the manifest: never listed, so that writing them changes no hash.
UNLISTED = (MANIFEST, "parity.json")


def file_entries(bundle_dir: Path) -> dict:
    """``{relative path: {sha256, bytes}}`` of every file of a bundle directory but its reports."""
    listed = sorted(p for p in Path(bundle_dir).rglob("*") if p.is_file() and p.name not in UNLISTED)
    return {p.relative_to(bundle_dir).as_posix(): _file_entry(p) for p in listed}


def _file_entry(path: Path) -> dict:
    """One file's manifest entry: its sha256 and size."""
    return {"sha256": sha256_of(path), "bytes": path.stat().st_size}


def write_manifest(bundle_dir: Path, manifest: dict, *, hash_files: bool = True) -> Path:
    """Check ``manifest`` and write it as the bundle's ``manifest.json``; returns its path.

    Args:
        bundle_dir: the bundle directory.
        manifest: the whole manifest; with ``hash_files`` its ``files`` entry is replaced in place.
        hash_files: (re)compute every bundle file's sha256 from the directory first. Off, the listing
            is kept as it is (an installed bundle lists files it does not ship).

    Raises:
        UnsupportedManifest: the manifest is one ``load_bundle`` would refuse.
    """
    path = Path(bundle_dir) / MANIFEST
    if hash_files:
        manifest["files"] = file_entries(bundle_dir)
    text = json.dumps(manifest, indent=2) + "\n"
    written = json.loads(text)  # checked as it will be read back (tuples become lists)
    version = written.get("schema_version")
    if isinstance(version, bool) or version != SCHEMA_VERSION:
        raise UnsupportedManifest(f"{path}: refusing to write schema_version {version!r}, not {SCHEMA_VERSION}")
    try:
        check_manifest(written)
    except UnsupportedManifest as error:
        raise UnsupportedManifest(f"{path}: refusing to write it: {error}") from None
    path.write_text(text)
    return path


def update_manifest(bundle_dir: Path, *, hash_files: bool = True, **entries) -> None:
    """Replace top-level manifest entries (a key already there keeps its place) and write it again.

    Args:
        bundle_dir: the bundle directory.
        hash_files: as for ``write_manifest``.
        entries: the entries to set, e.g. ``name=...`` or ``parity={...}``.
    """
    manifest = json.loads((Path(bundle_dir) / MANIFEST).read_text())
    manifest.update(entries)
    write_manifest(bundle_dir, manifest, hash_files=hash_files)


def rehash_files(bundle_dir: Path, names: tuple[str, ...]) -> None:
    """Hash the named files again, keeping every other entry (an installed bundle lists files it does not ship)."""
    manifest = json.loads((Path(bundle_dir) / MANIFEST).read_text())
    manifest["files"].update({name: _file_entry(Path(bundle_dir) / name) for name in names})
    write_manifest(bundle_dir, manifest, hash_files=False)
