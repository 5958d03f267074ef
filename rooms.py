"""The rooms of the house and their one-way doors: the one source the README's table and the
architecture test (tests/test_architecture.py) both follow.

Data flows images -> datasets -> train -> run dir -> export -> bundle -> runtime -> results; release
curates and installs embedded models; bench and evaluate read bundles; kiosk, scale and maps serve
the runtime. Every room may import ``errors``; the top-level cli imports every command lazily.
"""

from __future__ import annotations

# room -> (the rooms it may import, what it holds)
ROOMS: dict[str, tuple[frozenset[str], str]] = {
    "errors": (frozenset(), "one exceptions module: a base error and its subclasses"),
    "metrics": (frozenset(), "binary and multiclass metrics, the patient vote, grouped k-fold (a leaf)"),
    "bundle": (frozenset({"errors"}),
               "the contract: manifest, validation, preprocessing spec and execution, gates, "
               "its TFLite files run by LiteRT"),
    "runtime": (frozenset({"bundle", "errors"}), "sessions, routing, Grad-CAM, classify, verify, embedded models"),
    "datasets": (frozenset({"bundle", "metrics", "errors"}),
                 "readers, synthetic data, inspection, grouped splits, a run's run.json (RunInfo)"),
    "train": (frozenset({"datasets", "bundle", "metrics", "errors"}), "Keras models, augmentation, fit, CV"),
    "export": (frozenset({"train", "datasets", "bundle", "runtime", "metrics", "errors"}),
               "run directory -> bundle: ONNX/TFLite fp32 + int8, Grad-CAM graphs, golden set, parity"),
    "evaluate": (frozenset({"runtime", "bundle", "datasets", "metrics", "errors"}),
                 "a bundle on labelled data: metrics, panels, localisation"),
    "release": (frozenset({"export", "evaluate", "bench", "runtime", "datasets", "bundle", "metrics", "errors"}),
                "choosing, carding and installing the embedded models"),
    "bench": (frozenset({"runtime", "bundle", "datasets", "errors"}),
              "bundles measured side by side, and the timing harness every latency is taken with"),
    "kiosk": (frozenset({"runtime", "bundle", "maps", "errors"}), "the kiosk page (edgehisto serve)"),
    "scale": (frozenset({"runtime", "bundle", "errors"}), "batch on Ray"),
    "maps": (frozenset({"runtime", "bundle", "scale", "errors"}),
             "slide maps: probability map, tile table, QuPath GeoJSON"),
}
