"""A run directory's ``run.json``: what training recorded for export and the model cards to read.

``RunInfo`` is the file's one reader and writer. It lives beside ``splits`` (the run directory's
other record) rather than in train/, because release reads it too and may not import train.

Fields a run of one task does not have stay None and are not written (IDC: ``model``, ``output``,
``class_names``, ``gradcam_layer``, ``epochs_run``, ``load_failures``; BreaKHis: ``arch``,
``routing``, ``stages``). Keys this version does not know are kept in ``extra`` and written back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from edgehisto.bundle.preprocess import PreprocessSpec

RUN_INFO = "run.json"
# Written even when None: a null class_weight means training used no class weights.
_WRITTEN_WHEN_NONE = frozenset({"class_weight"})


def run_info_file(run_dir: Path) -> Path:
    """Where a run directory's ``run.json`` is (present once training finished)."""
    return Path(run_dir) / RUN_INFO


def _known_and_extra(cls, data: dict) -> tuple[dict, dict]:
    names = {f.name for f in fields(cls)} - {"extra"}
    return {k: v for k, v in data.items() if k in names}, {k: v for k, v in data.items() if k not in names}


@dataclass(frozen=True)
class RunStage:
    """One trained stage of a multi-stage run (BreaKHis): its Keras file and output layers."""

    name: str
    model_file: str
    class_names: list[str]
    output: str
    gradcam_layer: str
    logits_layer: str
    probabilities_layer: str
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The stage's entry in ``run.json``."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"} | self.extra

    @classmethod
    def from_dict(cls, data: dict) -> RunStage:
        """A stage entry read from ``run.json``."""
        known, extra = _known_and_extra(cls, data)
        return cls(**known, extra=extra)


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """Everything ``run.json`` records, in the order it is written."""

    task: str
    arch: str | None = None  # BreaKHis: "hierarchy" or "multitask"
    model: str | None = None  # IDC: the registered model (train/models.py)
    output: str | None = None  # IDC: "sigmoid" or "softmax"
    class_names: list[str] | None = None  # IDC
    gradcam_layer: str | None = None  # IDC
    preprocess: PreprocessSpec
    config: dict  # the task's training config, every field
    data_dir: Path  # absolute: where the tiles were read
    routing: dict[str, dict[str, str]] | None = None  # BreaKHis: {stage: {label: next stage}}
    stages: list[RunStage] | None = None  # BreaKHis
    problems: list[dict] = field(default_factory=list)  # files the scan left out, with the reason
    class_weight: dict | None = None
    n_params: int | dict[str, int] | None = None  # per model file when a run has several
    epochs_run: int | None = None
    load_failures: dict[str, list] | None = None  # split side -> [(relpath, reason)] training could not load
    provenance: dict | None = None  # bundle/provenance.py: versions, platform, git commit, arguments
    extra: dict = field(default_factory=dict)  # keys this version does not know, kept as read

    def to_dict(self) -> dict:
        """The JSON object ``run.json`` holds."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or (value is None and f.name not in _WRITTEN_WHEN_NONE):
                continue
            if f.name == "preprocess":
                value = value.to_dict()
            elif f.name == "data_dir":
                value = str(value)
            elif f.name == "stages":
                value = [stage.to_dict() for stage in value]
            out[f.name] = value
        return out | self.extra

    @classmethod
    def from_dict(cls, data: dict) -> RunInfo:
        """The record of a parsed ``run.json``."""
        known, extra = _known_and_extra(cls, data)
        known["preprocess"] = PreprocessSpec.from_dict(known["preprocess"])
        known["data_dir"] = Path(known["data_dir"])
        if known.get("stages") is not None:
            known["stages"] = [RunStage.from_dict(stage) for stage in known["stages"]]
        return cls(**known, extra=extra)

    def write(self, run_dir: Path) -> Path:
        """Write ``run.json`` into ``run_dir``; returns its path."""
        path = run_info_file(run_dir)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, run_dir: Path) -> RunInfo:
        """Read a run directory's ``run.json``."""
        return cls.from_dict(json.loads(run_info_file(run_dir).read_text()))
