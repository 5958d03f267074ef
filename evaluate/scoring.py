"""What a bundle makes of labelled tiles: per-stage outcomes, Grad-CAM localisation, the deletion test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgehisto.bundle.manifest import Bundle, StageSpec
from edgehisto.bundle.preprocess import normalize
from edgehisto.bundle.progress import Progress, no_progress
from edgehisto.errors import EdgehistoError
from edgehisto.evaluate import localisation as loc
from edgehisto.evaluate.labelled_tiles import LabelledTile
from edgehisto.metrics.scores import classification_metrics
from edgehisto.runtime.classifier import Classifier
from edgehisto.runtime.gradcam import explained_class


@dataclass
class TileOutcome:
    """What one stage at one precision made of one tile (``None``: not measurable here)."""

    path: str
    true: int
    predicted: int
    confidence: float  # probability of the predicted class
    explained: int = -1  # the class whose score the Grad-CAM map explains (``runtime.gradcam.explained_class``)
    explained_probability: float = 0.0  # its probability, what the deletion test measures the drop of
    lesion_area_share: float | None = None  # set only for tiles with a lesion mask
    pointing_hit: bool | None = None
    energy_share: float | None = None
    deletion_drop: float | None = None  # confidence lost when the top-k% map pixels are deleted
    random_drop: float | None = None  # ... when as many random pixels are deleted

    @property
    def correct(self) -> bool:
        """Whether the prediction matches the true label."""
        return self.true == self.predicted


def routed_metrics(classifier: Classifier, bundle: Bundle, tiles: Sequence[LabelledTile]) -> dict:
    """End-to-end metrics of the routed label (e.g. BreaKHis 8-class), as the runtime routes."""
    from edgehisto.datasets.tasks import END_TO_END_CLASSES

    classes = END_TO_END_CLASSES[bundle.task]
    results = classifier.classify_paths([t.path for t in tiles])
    pairs = [(t.end_to_end, classes.index(r.stages[-1].label)) for t, r in zip(tiles, results, strict=True) if r.ok]
    return classification_metrics([p[0] for p in pairs], [p[1] for p in pairs], classes)


@dataclass
class _Scored:
    """A tile's outcome with what the deletion test still needs."""

    outcome: TileOutcome
    image: np.ndarray
    heat: np.ndarray
    rng: np.random.Generator


def score_tiles(classifier: Classifier, tiles: Sequence[LabelledTile], top_k_percent: float,
                seed: int = 0, batch_size: int = 64, progress: Progress = no_progress
                ) -> tuple[dict[str, list[TileOutcome]], list[dict]]:
    """Classify tiles with Grad-CAM and score each stage's maps: ({stage: outcomes}, failures).

    Per-tile failures (unreadable tile or mask) are collected, not raised. Random deletion masks
    are seeded per tile, so every precision deletes the same random pixels.
    """
    outcomes: dict[str, list[TileOutcome]] = {name: [] for name in classifier.stages}
    failures: list[dict] = []
    for start in range(0, len(tiles), batch_size):
        chunk = tiles[start:start + batch_size]
        results = classifier.classify_paths([t.path for t in chunk], gradcam=True, batch_size=batch_size)
        pending: dict[str, list[_Scored]] = {}
        for index, (tile, result) in enumerate(zip(chunk, results, strict=True), start=start):
            if not result.ok:
                failures.append({"path": result.path, "error": result.error})
                continue
            lesion = _lesion(tile, classifier, failures)
            for stage in result.stages:
                if stage.stage not in tile.truth:
                    continue
                spec = classifier.stages[stage.stage]
                explained = explained_class(spec.output, len(spec.class_names), stage.class_index)
                outcome = TileOutcome(result.path, tile.truth[stage.stage], stage.class_index,
                                      stage.probabilities[stage.label], explained,
                                      stage.probabilities[spec.class_names[explained]])
                heat = loc.upsample_map(stage.cam, result.image.shape[:2])
                if lesion is not None:
                    outcome.lesion_area_share = float(lesion.mean())
                    outcome.pointing_hit = loc.pointing_hit(heat, lesion)
                    outcome.energy_share = loc.energy_share(heat, lesion)
                outcomes[stage.stage].append(outcome)
                pending.setdefault(stage.stage, []).append(
                    _Scored(outcome, result.image, heat, np.random.default_rng([seed, index])))
        for stage_name, scored in pending.items():
            _deletion_test(classifier, classifier.stages[stage_name], scored, top_k_percent / 100.0)
        progress(min(start + batch_size, len(tiles)), len(tiles), f"{classifier.precision} tiles")
    return outcomes, failures


def _lesion(tile: LabelledTile, classifier: Classifier, failures: list[dict]) -> np.ndarray | None:
    if tile.mask_path is None:
        return None
    try:
        return loc.load_mask(tile.mask_path, classifier.spec, tile.size)
    except EdgehistoError as error:
        failures.append({"path": str(tile.mask_path), "error": str(error)})
        return None


def _deletion_test(classifier: Classifier, stage: StageSpec, scored: list[_Scored], fraction: float) -> None:
    """Fill in the drops, in the probability of the class the map explains, for top-k% and random deletion.

    Deleted pixels take the background value (``pad_value``). For a single-sigmoid stage the map is
    the positive class's evidence, so the drop is measured in that class's probability whatever the
    predicted label: a map of IDC evidence is faithful when deleting its top pixels lowers P(IDC).
    """
    scored = [s for s in scored if s.heat.max() > 0]  # an all-zero map has no top pixels
    if not scored:
        return
    value = classifier.spec.pad_value
    deleted = [loc.delete_pixels(s.image, loc.top_fraction_mask(s.heat, fraction), value) for s in scored]
    deleted += [loc.delete_pixels(s.image, loc.random_fraction_mask(s.heat.shape, fraction, s.rng), value)
                for s in scored]
    x = normalize(np.stack(deleted), classifier.spec)
    probabilities = classifier.head(classifier.activations(x, stage), stage)[1]
    n = len(scored)
    for row, s in enumerate(scored):
        before, explained = s.outcome.explained_probability, s.outcome.explained
        s.outcome.deletion_drop = before - float(probabilities[row, explained])
        s.outcome.random_drop = before - float(probabilities[n + row, explained])
