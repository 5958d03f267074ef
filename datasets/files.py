"""File-level helpers shared by the dataset readers: walking, metadata, problems, image sizes.

Readers never raise for one bad file: they describe it as a ``FileProblem`` and carry on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# Files that are obviously not tiles: documentation and metadata next to the data.
_METADATA_SUFFIXES = {".md", ".txt", ".csv", ".json", ".yaml", ".yml", ".rst"}
_METADATA_NAMES = {"thumbs.db", "desktop.ini", "license", "readme"}
_PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
_PNG_TAIL = b"\x00\x00\x00\x00IEND\xaeB`\x82"


@dataclass(frozen=True)
class FileProblem:
    """A file that looks like data but was left out, with a one-line reason."""

    path: Path
    reason: str


def walk_files(root: Path) -> Iterator[Path]:
    """Yield every non-hidden file under root, directories and files in sorted order."""
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(directory) / name


def is_metadata(path: Path) -> bool:
    """True for documentation/metadata files that are obviously not tiles."""
    return path.suffix.lower() in _METADATA_SUFFIXES or path.name.lower() in _METADATA_NAMES


@contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's stderr log inside the block, restoring the previous level after."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)


def image_size(path: Path) -> tuple[int, int] | str:
    """Return (width, height) of a decodable image, or a one-line reason it is unreadable."""
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        return "unreadable image: empty file (0 bytes)"
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    if image is None:
        return f"unreadable image: OpenCV cannot decode it ({data.size} bytes)"
    height, width = image.shape[:2]
    return width, height


def png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from an intact-looking PNG's IHDR, or None if head or tail look wrong.

    Reading 24 bytes from each end instead of decoding keeps a full scan of the 7,909 images
    near a second; a truncated download loses its IEND trailer and is caught here.
    """
    with open(path, "rb") as handle:
        head = handle.read(24)
        if len(head) < 24 or not head.startswith(_PNG_HEAD):
            return None
        handle.seek(-len(_PNG_TAIL), 2)
        if handle.read() != _PNG_TAIL:
            return None
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return (width, height) if width and height else None

