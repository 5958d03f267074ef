"""Linear probes: what a backbone start's frozen features carry about benign/malignant, before fine-tuning.

The probes use the same grouped folds as ``grouped_cv`` (``edgehisto.metrics.scores.grouped_folds``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgehisto.datasets.tasks import BREAKHIS
from edgehisto.metrics.scores import binary_figures, grouped_folds

_LOG = logging.getLogger(__name__)  # default progress sink; the CLI passes its own


def probe_features(data_dir: Path, weights: str | None, input_size: int = 128) -> dict[str, np.ndarray]:
    """Per image: the backbone's pooled features (``weights`` or a random start) and colour statistics."""
    import keras

    from edgehisto.datasets.breakhis import scan_breakhis
    from edgehisto.datasets.tasks import breakhis_labels
    from edgehisto.train.breakhis import breakhis_preprocess_spec
    from edgehisto.train.data import load_tiles, normalize_tf
    from edgehisto.train.models import create_model

    dataset = scan_breakhis(data_dir)
    spec = breakhis_preprocess_spec(input_size)
    arrays = load_tiles(dataset.root, dataset.relpaths, breakhis_labels(dataset), spec)
    x = normalize_tf(arrays.images, spec).numpy()
    features = {}
    for name, start in (("pretrained_frozen", weights), ("random_frozen", None)):
        if name == "pretrained_frozen" and weights is None:
            continue
        keras.utils.set_random_seed(0)
        model = create_model("densenet121", n_classes=2, input_size=input_size, weights=start)
        features[name] = keras.Model(model.input, model.get_layer("gap").output).predict(x, batch_size=32, verbose=0)
    pixels = arrays.images.reshape(len(x), -1, 3).astype(np.float64)
    features["colour_statistics"] = np.concatenate([pixels.mean(1), pixels.std(1)], axis=1)
    return features


def linear_probes(data_dir: Path, out_dir: Path, weights: str | None, folds: int = 4, seed: int = 0,
                  split_key: str = "slide", log: Callable[[str], None] = _LOG.info) -> dict:
    """Grouped k-fold CV of a logistic regression on frozen features (the same folds as ``grouped_cv``).

    A cheap check of what a start's features carry before fine-tuning: the pretrained backbone
    frozen, a random backbone frozen, and six colour statistics (per-channel mean and std) as a
    floor that knows nothing of tissue structure.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from edgehisto.datasets.breakhis import scan_breakhis, split_groups
    from edgehisto.datasets.tasks import breakhis_labels

    dataset = scan_breakhis(data_dir)
    labels, groups = breakhis_labels(dataset), split_groups(dataset, split_key)
    binary = BREAKHIS.stage_labels(labels)["binary"]
    held_out = grouped_folds(labels, groups, folds, seed)
    record = {"folds": folds, "seed": seed, "split_key": split_key, "probes": {}}
    for name, features in probe_features(data_dir, weights).items():
        scores = []
        for held in held_out:
            train = np.setdiff1d(np.arange(len(labels)), held)
            probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced"))
            probe.fit(features[train], binary[train])
            scores.append(binary_figures(binary[held], probe.predict(features[held]))["balanced_accuracy"])
        record["probes"][name] = {"per_fold": scores, "mean": float(np.mean(scores)),
                                  "sd": float(np.std(scores, ddof=1))}
        log(f"linear probe on {name}: held-out balanced accuracy {np.mean(scores):.3f} ± {np.std(scores, ddof=1):.3f}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "probes.json").write_text(json.dumps(record, indent=2))
    return record
