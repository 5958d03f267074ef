"""Expanding the PATH arguments of ``classify``: files, directories and glob patterns."""

from __future__ import annotations

import glob
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
MASK_SUFFIX = "_mask.png"  # lesion masks written by ``synth`` beside their tiles


def _is_tile(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.endswith(MASK_SUFFIX)


def expand_inputs(arguments: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Resolve arguments to image files, in order, without duplicates.

    Returns:
        (files, unmatched): ``unmatched`` pairs an argument that named nothing with the reason.
    """
    files: list[Path] = []
    unmatched: list[tuple[str, str]] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _is_tile(p))
            if not found:
                unmatched.append((argument, "directory holds no image files"))
            files.extend(found)
        elif path.exists():
            files.append(path)  # named explicitly: try it even if the suffix is unusual
        elif glob.has_magic(argument):
            found = sorted(Path(p) for p in glob.glob(argument, recursive=True) if _is_tile(Path(p)))
            if not found:
                unmatched.append((argument, "pattern matches no image files"))
            files.extend(found)
        else:
            unmatched.append((argument, "no such file or directory"))
    unique = list(dict.fromkeys(files))
    return unique, unmatched
