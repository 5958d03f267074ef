"""The kiosk's state: the served model, its on-device verification, and the ring of recent results."""

from __future__ import annotations

import collections
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgehisto.bundle.manifest import Bundle
from edgehisto.errors import EdgehistoError
from edgehisto.kiosk.pictures import data_url
from edgehisto.runtime.classifier import Classifier, TileResult
from edgehisto.runtime.gradcam import overlay
from edgehisto.runtime.registry import MODELS_DIR, names_of, resolve_bundle
from edgehisto.runtime.verify import cpu_kind, verify_bundle

DEFAULT_MAX_UPLOAD_MB = 20
INTENDED_USE = "Research and demonstration, not a diagnostic device."


@dataclass
class KioskSettings:
    """What ``edgehisto serve`` configures; every field has the documented default."""

    model: str | Path | None = None  # an embedded model's name, a bundle directory, or the default
    precision: str = "int8"
    watch_dir: Path | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 2**20
    workers: int = 1
    queue: int = 4
    history: int = 12
    watch_interval_s: float = 1.0


@dataclass
class Kiosk:
    """The served model, its on-device verification, and the ring of recent results."""

    settings: KioskSettings
    bundle: Bundle
    classifier: Classifier
    verification: dict
    history: collections.deque = field(default_factory=collections.deque)
    next_id: int = 1

    @classmethod
    def start(cls, settings: KioskSettings) -> Kiosk:
        """Load and verify the bundle (raises ``EdgehistoError`` if it cannot be loaded at all)."""
        bundle = resolve_bundle(settings.model)
        try:
            report = verify_bundle(bundle, precisions=(settings.precision,))
            verification = {"passed": report.passed, "cpu": cpu_kind(),
                            "failed_gates": [g.name for g in report.gates if not g.passed]}
        except EdgehistoError as error:
            verification = {"passed": False, "cpu": cpu_kind(), "failed_gates": [], "error": str(error)}
        classifier = Classifier(bundle, precision=settings.precision, threads=1)
        return cls(settings, bundle, classifier, verification, collections.deque(maxlen=settings.history))

    def summary(self) -> dict:
        """The always-visible facts about the served model."""
        bundle = self.bundle
        card = bundle.path / "MODEL_CARD.md"
        embedded = bundle.path.resolve().parent == MODELS_DIR.resolve()
        exported = bundle.exported_at
        return {
            "name": names_of(bundle.path.name)[0] if embedded else bundle.name,
            "task": bundle.task, "arch": bundle.arch,
            "version": f"exported {(exported if exported is not None else 'at an unknown time')[:10]} by edgehisto "
                       f"{bundle.made_with.get('edgehisto', '?')}",
            "sha256": bundle.manifest_sha256,
            "precision": self.settings.precision,
            "classes": bundle.class_names,
            "routing": bundle.routing,
            "expected_input": bundle.expects,
            "intended_use": _intended_use(card),
            "caveat": bundle.caveat,
            "has_model_card": card.is_file(),
            "watching": self.settings.watch_dir is not None,
            "verification": self.verification,
            "max_upload_mb": self.settings.max_upload_bytes / 2**20,
        }

    def classify(self, name: str, data: bytes, source: str) -> dict:
        """Classify one encoded image with Grad-CAM; the result entry (``remember`` keeps it).

        Runs on a worker thread; it touches no shared state.
        """
        started = time.perf_counter()
        (result,) = self.classifier.classify_bytes([(name, data)], gradcam=True)
        entry = {"record": result.to_record(), "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                 "source": source, "time": time.strftime("%H:%M:%S")}
        if result.ok:
            entry["images"] = self._images(result)
        return entry

    def remember(self, entry: dict) -> dict:
        """Give an entry its id and put it in the ring. Called on the event loop only, like every
        reader of the ring, so ids are unique and no reader sees the ring change under it."""
        entry["id"] = self.next_id
        self.next_id += 1
        self.history.appendleft(entry)
        return entry

    def _images(self, result: TileResult) -> dict:
        peaks = {n: s.gradcam_display_peak for n, s in self.classifier.stages.items()}
        return {"tile": data_url(result.image),
                "overlays": {s.stage: data_url(overlay(result.image, s.cam, peak=peaks.get(s.stage)))
                             for s in result.stages if s.cam is not None}}

    def find(self, result_id: int) -> dict | None:
        """A result still in the ring, by id."""
        return next((e for e in self.history if e["id"] == result_id), None)


def _intended_use(card: Path) -> str:
    if card.is_file():
        for line in card.read_text(encoding="utf-8", errors="replace").splitlines():
            if "not a diagnostic device" in line:
                return re.sub(r"[*_`]", "", line).strip()
    return INTENDED_USE
