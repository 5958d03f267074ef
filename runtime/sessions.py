"""onnxruntime CPU sessions as the runtime runs them: one public factory, one set of settings.

The defaults are the choices measured by ``edgehisto bench --tuning-variants`` (README, "Benchmarks"):

- ``ORT_ENABLE_ALL``: the int8 QDQ kernels fuse only at this level (2.5x faster than EXTENDED on
  int8, consistent over rounds).
- No spinning: a bundle runs two or three small sessions in turn, and each one's spinning workers
  would hold a core while the next runs (1.4x on fp32, consistent over rounds).
- One inter-op thread, sequential execution: parallel execution with two inter-op threads was
  5.6-6.3x slower on these graphs; with one it was within noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import onnxruntime as ort

SPINNING = "session.intra_op.allow_spinning"


@dataclass(frozen=True)
class SessionSettings:
    """The settings of one session, named as the tuning tables name them."""

    intra: int = 0  # intra-op threads; 0: onnxruntime's default (one per core)
    inter: int = 1  # inter-op threads
    level: str = "ORT_ENABLE_ALL"  # a GraphOptimizationLevel member
    mode: str = "ORT_SEQUENTIAL"  # an ExecutionMode member
    spin: str = "0"  # "1": idle intra-op workers spin

    def to_dict(self) -> dict:
        """The settings as JSON-ready data."""
        return asdict(self)


def session_options(settings: SessionSettings) -> ort.SessionOptions:
    """onnxruntime ``SessionOptions`` carrying ``settings``."""
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = settings.intra, settings.inter
    options.graph_optimization_level = ort.GraphOptimizationLevel.__members__[settings.level]
    options.execution_mode = ort.ExecutionMode.__members__[settings.mode]
    options.add_session_config_entry(SPINNING, settings.spin)
    return options


def make_session(path: str | Path | bytes, threads: int | None = None, *,
                 optimized_model_path: str | Path | None = None, profile_prefix: str | Path | None = None,
                 **settings) -> ort.InferenceSession:
    """A CPU session of the ONNX file ``path`` (or its bytes) with the runtime's settings.

    Args:
        threads: intra-op threads (None or 0: one per core); overrides ``settings["intra"]``.
        optimized_model_path: also write the graph as onnxruntime optimised it (for inspection).
        profile_prefix: record onnxruntime's per-operator profile to a JSON file with this prefix
            (``end_profiling()`` returns its path; bench reads it).
        settings: ``SessionSettings`` fields that differ from the runtime's (bench sweeps them).
    """
    chosen = SessionSettings(**settings)
    if threads:
        chosen = SessionSettings(**{**chosen.to_dict(), "intra": threads})
    options = session_options(chosen)
    if optimized_model_path is not None:
        options.optimized_model_filepath = str(optimized_model_path)
        options.log_severity_level = 3  # the file is for inspection: no "hardware specific" warning
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    model = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
