"""The kiosk's map view: one uploaded region (a field, a mosaic, a slide crop) tiled and classified,
returned as the same map picture and summary that ``edgehisto map`` writes. Nothing touches the disk."""

from __future__ import annotations

import time

from edgehisto.errors import EdgehistoError
from edgehisto.kiosk.pictures import data_url
from edgehisto.maps.outputs import map_image, summary
from edgehisto.maps.run import map_encoded
from edgehisto.runtime.classifier import Classifier


def map_upload(classifier: Classifier, name: str, data: bytes, cpu: str, tissue_threshold: float = 0.5) -> dict:
    """Map one encoded image: ``{"map": {summary facts}, "image": PNG data URL, "latency_ms"}``, or
    ``{"error": one line}`` when it cannot be mapped (undecodable, over the pixel limit, under one tile)."""
    started = time.perf_counter()
    try:
        slide = map_encoded(name, data, classifier, tissue_threshold=tissue_threshold)
    except EdgehistoError as error:
        return {"error": str(error), "name": name}
    bundle = classifier.bundle
    facts = summary(slide, bundle.name, bundle.manifest_sha256,
                    classifier.precision, cpu)
    tiles = facts["tiles"]
    title = (f"{name}: {tiles['classified']} tiles classified, {tiles['background']} background, "
             f"{tiles['failed']} failed")
    return {"name": name, "map": {**facts, "source": name}, "image": data_url(map_image(slide, title)),
            "latency_ms": round((time.perf_counter() - started) * 1000, 1)}

