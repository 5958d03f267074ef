"""A routed bundle benched end to end: Keras in turn vs the runtime's classify, and where its time goes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgehisto.bench.config import BenchConfig, timed_together
from edgehisto.bench.stage import missing_files
from edgehisto.bench.variants import make_variant
from edgehisto.bundle import tensors
from edgehisto.bundle.manifest import Bundle, StageSpec
from edgehisto.runtime.classifier import Classifier


def _stages_that_ran(clf: Classifier, x1: np.ndarray) -> list[StageSpec]:
    return [clf.stages[s.stage] for s in clf.classify_tensor(x1)[0].stages]


def _stage_calls_only(clf: Classifier, x1: np.ndarray, stages: list[StageSpec]) -> Callable[[], None]:
    """Exactly the session runs that classify made for one tile (a shared backbone once): the floor."""
    runs, activations = [], {}
    for stage in stages:
        backbone = stage.backbone(clf.precision)
        if backbone not in activations:  # a shared (multitask) backbone runs once, as in classify
            session = clf.session(backbone, "backbone", stage)
            runs.append((session, [tensors.ACTIVATIONS], {tensors.IMAGE: x1}))
            activations[backbone] = session.run([tensors.ACTIVATIONS], {tensors.IMAGE: x1})[0]
        head = clf.session(stage.files["head"], "head", stage)
        runs.append((head, [tensors.LOGITS, tensors.PROBABILITIES], {tensors.ACTIVATIONS: activations[backbone]}))

    def call() -> None:
        for session, outputs, feeds in runs:
            session.run(outputs, feeds)
    return call


def bench_routed(bundle: Bundle, x: np.ndarray, labels: np.ndarray, image: Path, config: BenchConfig,
                 log: Callable[[str], None]) -> dict:
    """End to end: Keras (reference models in turn) vs the runtime at fp32 and int8, batch 1.

    For each precision, three calls are timed together: ``classify`` of the image file (decode,
    resize, stages), the same from the preprocessed tensor, and only the session runs of the stages
    that ran (the floor). Their ratios say where routed time goes outside the models.
    """
    from edgehisto.datasets.tasks import END_TO_END_CLASSES, TASKS, routed_labels

    task = TASKS[bundle.task]
    classes = END_TO_END_CLASSES[task.name]
    rows, calls = {}, {}
    if all(missing_files("keras_fp32", bundle, s) is None for s in bundle.stages.values()):
        keras_stages = {name: make_variant("keras_fp32", bundle, s, None) for name, s in bundle.stages.items()}
        reference = routed_labels(task, {n: v.predict(x).argmax(1) for n, v in keras_stages.items()})
        one_model = len({s.reference_keras for s in bundle.stages.values()}) == 1

        def keras_one():  # what a Keras user runs per image: each model on the route, in turn
            stage = bundle.entry_stage
            while stage is not None:
                label = keras_stages[stage].predict(x[:1]).argmax(1)[0]
                # one multitask predict computes the shared backbone, which is nearly all of the work
                routes = {} if one_model else bundle.routing.get(stage, {})
                stage = routes.get(bundle.stages[stage].class_names[label])
        rows["keras_fp32"] = {"accuracy": float(np.mean(reference == labels)), "agreement_with_keras": 1.0}
    else:
        reference = None
        rows["keras_fp32"] = {"skipped": "the Keras reference is not in this bundle"}
    x1 = x[:1]
    for precision in ("fp32", "int8"):
        clf = Classifier(bundle, precision=precision, allow_failed_parity=True)
        # a tile refused as non-finite has no label: -1, counted wrong
        predicted = np.array([classes.index(r.stages[-1].label) if r.stages else -1 for r in clf.classify_tensor(x)])
        ran = _stages_that_ran(clf, x1)
        rows[f"onnx_{precision}"] = {
            "accuracy": float(np.mean(predicted == labels)),
            "agreement_with_keras": None if reference is None else float(np.mean(predicted == reference)),
            "stages_ran": [s.name for s in ran]}
        calls[f"onnx_{precision}"] = lambda c=clf: c.classify_tensor(x1)
        calls[f"onnx_{precision}: file"] = lambda c=clf: c.classify_paths([image])
        calls[f"onnx_{precision}: stages only"] = _stage_calls_only(clf, x1, ran)
    log(f"  routed end to end: {', '.join(calls)}")
    timed = timed_together(calls, config)
    for name, stats in timed.items():
        kind, _, part = name.partition(": ")
        key = {"": "latency_all_threads", "file": "latency_file", "stages only": "latency_stages_only"}[part]
        rows[kind][key] = stats
    if reference is not None:
        log("  routed end to end: Keras predict vs ONNX int8")
        versus = timed_together({"keras_fp32": keras_one, "onnx_int8": calls["onnx_int8"]}, config, keras=True)
        rows["keras_fp32"]["latency_all_threads"] = versus["keras_fp32"]
        rows["onnx_int8"]["latency_vs_keras"] = versus["onnx_int8"]
    return rows
