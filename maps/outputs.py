"""What a slide map becomes for people and for QuPath: the map PNG, the tile table, the GeoJSON and a
summary. Pure functions of a ``SlideMap``; the CLI writes the files.

GeoJSON follows QuPath's conventions (0.4 and later): one ``Feature`` per classified tile, a closed
``Polygon`` ring in level-0 pixel coordinates with the origin at the top left, and properties
``objectType`` (``tile``), ``classification`` (``{"name", "color": [r, g, b]}``) and ``measurements``
(a dict of name -> number). In QuPath: File > Import objects from file, with the slide (or the same
region as an image) open.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from edgehisto.bundle.outputs import probability_column
from edgehisto.maps.run import SlideMap

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_INK, _GREY = (20, 20, 20), (90, 90, 90)
# Class colours in GeoJSON and the truth map: the first class blue, the last (positive) class red.
_CLASS_COLOURS = [(40, 90, 200), (200, 40, 40), (40, 160, 60), (200, 150, 30)]


def class_colour(index: int, n_classes: int) -> list[int]:
    """An [r, g, b] colour per class; the last class (the positive one) is always red."""
    return list(_CLASS_COLOURS[1]) if index == n_classes - 1 else list(_CLASS_COLOURS[[0, 2, 3][index % 3]])


def tile_columns(slide: SlideMap) -> list[str]:
    """The tile table's columns, in a fixed order."""
    return ["x", "y", "w", "h", "path", "label", *(probability_column(c) for c in slide.class_names),
            "tissue_fraction", "truth", "error"]


def tile_table(slide: SlideMap) -> Iterator[dict]:
    """One row per tile (classified, failed), with ``tile_columns``; a generator, so that a table of
    100,000 tiles is written row by row instead of copied whole."""
    columns = tile_columns(slide)
    return ({c: row.get(c) for c in columns} for row in slide.rows)


def geojson_features(slide: SlideMap) -> Iterator[dict]:
    """The GeoJSON Feature of each classified tile (see the module docstring), one at a time."""
    for row in slide.classified:
        x, y, w, h = row["x"], row["y"], row["w"], row["h"]
        index = slide.class_names.index(row["label"])
        measurements = {probability_column(c): float(row[probability_column(c)]) for c in slide.class_names}
        measurements["tissue_fraction"] = float(row["tissue_fraction"])
        yield {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [[[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]]]},
            "properties": {"objectType": "tile",
                           "classification": {"name": row["label"],
                                              "color": class_colour(index, len(slide.class_names))},
                           "measurements": measurements},
        }


def truth_scores(slide: SlideMap) -> dict | None:
    """Where every classified tile carries its true label: balanced accuracy, and Dice/IoU of the
    positive region (tiles of equal size, so areas are tile counts). None when no truth is known."""
    rows = [r for r in slide.classified if r["truth"] is not None]
    if not rows:
        return None
    positive = slide.class_names[-1]
    truth = np.array([r["truth"] == 1 for r in rows])
    called = np.array([r["label"] == positive for r in rows])
    recalls = [float((called[truth == v] == v).mean()) for v in (True, False) if (truth == v).any()]
    both, either = int((truth & called).sum()), int((truth | called).sum())
    total = int(truth.sum() + called.sum())
    return {"n": len(rows), "positive_tiles_true": int(truth.sum()), "positive_tiles_called": int(called.sum()),
            "balanced_accuracy": float(np.mean(recalls)) if len(recalls) == 2 else None,
            "dice": 2 * both / total if total else None, "iou": both / either if either else None}


def summary(slide: SlideMap, bundle_name: str, bundle_sha256: str, precision: str, cpu: str) -> dict:
    """Counts, the positive fraction, what ran where, and the truth scores when known."""
    classified = slide.classified
    positive = sum(r["label"] == slide.mapped_class for r in classified)
    skipped = {reason: len(names) for reason, names in slide.skipped.items()}
    return {
        "source": slide.source, "kind": slide.kind, "patient": slide.patient,
        "region": {"width": slide.width, "height": slide.height, "units": "level-0 pixels"},
        "tiles": {"classified": len(classified), "background": slide.background, "failed": len(slide.failed),
                  "skipped": skipped},
        "complete": not slide.failed and not skipped,
        "positive_class": slide.mapped_class,
        "positive_fraction": positive / len(classified) if classified else None,
        "model": bundle_name, "bundle_sha256": bundle_sha256, "precision": precision, "cpu": cpu,
        "seconds": round(slide.seconds, 3),
        "tiles_per_second": round(len(slide.rows) / slide.seconds, 1) if slide.seconds else None,
        "truth": truth_scores(slide),
    }


def map_image(slide: SlideMap, title: str) -> np.ndarray:
    """The map PNG (RGB): the region with P(mapped class) as a colour overlay, a colour bar, a title and
    a scale bar; beside it a truth map when the tiles carry their labels."""
    panels = [("prediction", _probability_overlay(slide))]
    if truth_scores(slide) is not None:
        names = slide.class_names
        panels.insert(0, (f"truth (dataset labels: red {names[-1]}, blue {names[0]})", _truth_overlay(slide)))
    height, gap, header, bar = slide.thumbnail.shape[0], 16, 80, 150
    width = sum(p.shape[1] for _, p in panels) + gap * (len(panels) + 1) + bar
    canvas = np.full((header + height + 50, width, 3), 255, np.uint8)
    cv2.putText(canvas, title, (gap, 30), _FONT, 0.7, _INK, 2, cv2.LINE_AA)
    left = gap
    for caption, panel in panels:
        cv2.putText(canvas, caption, (left, header - 12), _FONT, 0.6, _GREY, 1, cv2.LINE_AA)
        canvas[header:header + height, left:left + panel.shape[1]] = panel
        left += panel.shape[1] + gap
    _colour_bar(canvas, left, header, height, f"P({slide.mapped_class})")
    _scale_bar(canvas, gap, header + height + 30, slide.scale)
    return canvas


def _probability_overlay(slide: SlideMap) -> np.ndarray:
    heat = np.zeros(slide.thumbnail.shape[:2], np.float32)
    covered = np.zeros(slide.thumbnail.shape[:2], bool)
    failed = np.zeros(slide.thumbnail.shape[:2], bool)
    column = probability_column(slide.mapped_class)
    for row in slide.rows:
        box = _box(slide, row)
        if row["error"]:
            failed[box] = True
        else:
            heat[box] = row[column]
            covered[box] = True
    colour = cv2.cvtColor(cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    out = slide.thumbnail.copy()
    out[covered] = (0.55 * colour[covered] + 0.45 * out[covered]).astype(np.uint8)
    out[failed] = (128, 128, 128)  # a tile that failed is grey: never shown as classified
    return out


def _truth_overlay(slide: SlideMap) -> np.ndarray:
    out = slide.thumbnail.copy()
    for row in slide.rows:
        if row["truth"] is not None:
            box = _box(slide, row)
            colour = np.array(class_colour(int(row["truth"]), len(slide.class_names)), np.float32)
            out[box] = (0.55 * colour + 0.45 * out[box]).astype(np.uint8)
    return out


def _box(slide: SlideMap, row: dict) -> tuple[slice, slice]:
    s = slide.scale
    top, left = round(row["y"] * s), round(row["x"] * s)
    return (slice(top, max(top + 1, round((row["y"] + row["h"]) * s))),
            slice(left, max(left + 1, round((row["x"] + row["w"]) * s))))


def _colour_bar(canvas: np.ndarray, left: int, top: int, height: int, label: str) -> None:
    ramp = np.linspace(255, 0, height).astype(np.uint8)[:, None].repeat(18, axis=1)
    canvas[top:top + height, left:left + 18] = cv2.cvtColor(cv2.applyColorMap(ramp, cv2.COLORMAP_JET),
                                                            cv2.COLOR_BGR2RGB)
    (text_width, _), _ = cv2.getTextSize(label, _FONT, 0.55, 1)
    cv2.putText(canvas, label, (min(left, canvas.shape[1] - text_width - 4), top - 12), _FONT, 0.55, _INK, 1,
                cv2.LINE_AA)
    for value, y in ((1.0, top + 12), (0.5, top + height // 2 + 5), (0.0, top + height)):
        cv2.putText(canvas, f"{value:.1f}", (left + 24, y), _FONT, 0.55, _INK, 1, cv2.LINE_AA)


def _scale_bar(canvas: np.ndarray, left: int, y: int, scale: float) -> None:
    """A bar of a round number of level-0 pixels, about 150 drawn pixels long."""
    target = 150 / scale
    length = next(v for v in (50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 10**6) if v >= target / 2)
    drawn = max(1, round(length * scale))
    cv2.rectangle(canvas, (left, y - 6), (left + drawn, y), _INK, -1)
    cv2.putText(canvas, f"{length:,} px (level 0)", (left + drawn + 8, y), _FONT, 0.55, _INK, 1, cv2.LINE_AA)
