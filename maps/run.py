"""Classify every tile of a map source in batches, streaming: only small per-tile rows and a
screen-sized thumbnail are kept, never a full-resolution mosaic."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgehisto.bundle.images import decode_rgb
from edgehisto.bundle.outputs import probability_column
from edgehisto.bundle.progress import Progress, no_progress
from edgehisto.maps.sources import Layout, MapSourceError, image_layout, patch_layout
from edgehisto.runtime.classifier import Classifier
from edgehisto.runtime.inputs import read_tile_file

MAP_SIDE = 900  # the longest side of one drawn map, pixels: truth and prediction side by side fit a screen
# Tiles per session run. onnxruntime keeps its peak arena, so the batch sets the floor of a map's memory:
# on 30,000 IDC tiles, batches of 256 held RSS at about 330 MB, 128 at 209 MB and 64 at 177 MB (2,389 tiles/s,
# the fastest of the three).
BATCH = 64


@dataclass
class SlideMap:
    """What ``map_slide`` measured: per-tile rows, a thumbnail of the region, counts and timing."""

    source: str
    kind: str
    width: int
    height: int
    scale: float  # thumbnail pixels per level-0 pixel
    thumbnail: np.ndarray  # RGB, the region at ``scale``
    class_names: list[str]
    mapped_class: str  # the class whose probability the map colours
    rows: list[dict] = field(default_factory=list)
    background: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)
    patient: str | None = None
    seconds: float = 0.0

    @property
    def classified(self) -> list[dict]:
        """Rows of tiles that were classified."""
        return [r for r in self.rows if not r["error"]]

    @property
    def failed(self) -> list[dict]:
        """Rows of tiles that could not be classified (each with its error)."""
        return [r for r in self.rows if r["error"]]


def map_slide(source: Path, classifier: Classifier, stride: int | None = None, tissue_threshold: float = 0.5,
              progress: Progress = no_progress) -> SlideMap:
    """Lay out ``source`` (a patch folder or one large image) and classify every tissue tile.

    Raises:
        MapSourceError: the source cannot be mapped as a whole (one line says why).
        InvalidImage: the large image cannot be decoded or is over the runtime's pixel limit.
    """
    started = time.perf_counter()
    tile_size = _tile_size(classifier)
    source = Path(source)
    if source.is_dir():
        layout = patch_layout(source, tile_size)
    elif source.is_file():
        layout = _image_layout(read_tile_file(source, max_bytes=_MAX_IMAGE_BYTES), classifier, stride,
                               tissue_threshold)
    else:
        raise MapSourceError(f"{source} is neither a folder of patches nor an image file")
    return _classify_layout(str(source), layout, classifier, started, progress)


def map_encoded(name: str, data: bytes, classifier: Classifier, stride: int | None = None,
                tissue_threshold: float = 0.5) -> SlideMap:
    """``map_slide`` for one large image held in memory (an upload): nothing touches the disk.

    Raises:
        MapSourceError: the image is smaller than one tile.
        InvalidImage: it cannot be decoded or is over the runtime's pixel limit.
    """
    started = time.perf_counter()
    return _classify_layout(name, _image_layout(data, classifier, stride, tissue_threshold), classifier, started)


def _image_layout(data: bytes, classifier: Classifier, stride: int | None, tissue_threshold: float) -> Layout:
    spec = classifier.spec
    rgb = decode_rgb(data, max_pixels=spec.max_pixels, min_side=spec.min_side)
    return image_layout(rgb, _tile_size(classifier), stride, tissue_threshold)


def _classify_layout(source: str, layout: Layout, classifier: Classifier, started: float,
                     progress: Progress = no_progress) -> SlideMap:
    stage = classifier.stages[classifier.bundle.entry_stage]
    names = list(stage.class_names)
    scale = min(1.0, MAP_SIDE / max(layout.width, layout.height))
    result = SlideMap(source, layout.kind, layout.width, layout.height, scale, _blank(layout, scale), names,
                      names[-1], background=layout.background, skipped=layout.skipped, patient=layout.patient)
    if layout.image is not None:
        result.thumbnail = cv2.resize(layout.image, result.thumbnail.shape[1::-1], interpolation=cv2.INTER_AREA)
    for start in range(0, len(layout.tiles), BATCH):
        _classify_batch(classifier, layout, layout.tiles[start:start + BATCH], result)
        progress(min(start + BATCH, len(layout.tiles)), len(layout.tiles), "tiles")
    layout.image = None
    result.seconds = time.perf_counter() - started
    return result


_MAX_IMAGE_BYTES = 512 * 2**20  # a large image file (the pixel limit still applies after decoding)


def _tile_size(classifier: Classifier) -> tuple[int, int]:
    """(h, w) of a tile: the bundle's declared input (``expected_input.size``), else its model input."""
    expected = classifier.expected_input
    return tuple(expected.size) if expected is not None else tuple(classifier.spec.input_size)


def _blank(layout: Layout, scale: float) -> np.ndarray:
    return np.full((max(1, round(layout.height * scale)), max(1, round(layout.width * scale)), 3), 255, np.uint8)


def _classify_batch(classifier: Classifier, layout: Layout, tiles: list, out: SlideMap) -> None:
    if layout.kind == "patches":
        results = classifier.classify_paths([t.path for t in tiles], batch_size=BATCH)
    else:
        results = classifier.classify_arrays([layout.image[t.y:t.y + t.h, t.x:t.x + t.w] for t in tiles])
    for tile, result in zip(tiles, results, strict=True):
        row = {"x": tile.x, "y": tile.y, "w": tile.w, "h": tile.h, "path": tile.path or "",
               "label": None, "tissue_fraction": round(tile.tissue, 4), "truth": tile.truth, "error": result.error}
        if result.ok:
            stage = result.stages[0]
            row["label"] = stage.label
            row |= {probability_column(name): p for name, p in stage.probabilities.items()}
            if layout.kind == "patches" and result.image is not None:
                _paste(out, tile, result.image)
        out.rows.append(row)


def _paste(out: SlideMap, tile, image: np.ndarray) -> None:
    """Draw a patch into the thumbnail at its place (the model input, downscaled)."""
    left, top = round(tile.x * out.scale), round(tile.y * out.scale)
    right = min(out.thumbnail.shape[1], max(left + 1, round((tile.x + tile.w) * out.scale)))
    bottom = min(out.thumbnail.shape[0], max(top + 1, round((tile.y + tile.h) * out.scale)))
    if right > left and bottom > top:
        out.thumbnail[top:bottom, left:right] = cv2.resize(image, (right - left, bottom - top),
                                                           interpolation=cv2.INTER_AREA)
