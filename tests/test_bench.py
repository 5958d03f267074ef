"""A tiny bench run: every variant measured, targets judged, JSON/Markdown/PNG written."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")


def test_bench_measures_every_variant_and_writes_reports(idc_bundle, tmp_path):
    from edgehisto.bench.report import write_reports
    from edgehisto.bench.run import BenchConfig, run_bench
    from edgehisto.bench.variants import VARIANTS

    report = run_bench([idc_bundle], None, BenchConfig(repeats=3, batch=4, limit=16, process_repeats=1,
                                                       profile_runs=2, keras_repeats=3), log=lambda _: None)
    if Path("/proc/cpuinfo").exists():
        assert report["machine"]["isa"] != "unknown" and report["machine"]["load_average"] is not None
    result = report["bundles"][0]
    rows = result["stages"]["idc"]
    assert list(rows) == list(VARIANTS)
    assert rows["keras_fp32"]["agreement_with_keras"] == 1.0
    for kind in ("onnx_fp32", "tflite_fp32"):  # fp32 exports agree with Keras on every tile
        assert rows[kind]["agreement_with_keras"] == 1.0
    for row in rows.values():  # every latency comes from the interleaved rounds
        assert row["latency_all_threads"]["median_ms"] > 0 and row["latency_all_threads"]["round_medians_ms"]
        assert row["size_mb"] > 0
    assert "gradcam_cost_ratio" in rows["onnx_int8"]
    roof = result["roofline"]["idc"]
    assert roof["macs"] > 0 and roof["int8"]["fraction_of_peak"] > 0 and roof["int8"]["profile"]["ops"]
    process = result["process"]
    assert process["classify_int8"]["exit_codes"] == [0] and process["keras_predict"]["exit_codes"] == [0]
    targets = {t["target"]: t for t in result["targets"]}
    gate = targets["idc: onnx_int8 top-1 agreement with keras (the int8 parity gate)"]
    assert gate["met"] == (rows["onnx_int8"]["agreement_with_keras"] >= 0.97)
    ratio = targets["idc: ONNX int8 / TFLite int8 latency (both on all cores)"]
    assert ratio["isa"] == report["machine"]["isa"]
    assert ratio["value"] == rows["onnx_int8"]["latency_vs_tflite"]["median_ms"] / rows["tflite_int8"][
        "latency_vs_onnx"]["median_ms"]
    if ratio["verdict"] == "met":  # a verdict agrees with its numbers
        assert ratio["value"] <= 1 / 1.05

    written = write_reports(report, tmp_path)
    assert json.loads((tmp_path / "bench.json").read_text())["machine"]["cores"] >= 1
    text = (tmp_path / "bench.md").read_text()
    assert "| onnx_int8 |" in text and f"ISA class {report['machine']['isa']}" in text and "fraction of peak" in text
    pngs = [p for p in written if p.suffix == ".png"]
    assert any(p.name.endswith("_roofline.png") for p in pngs)
    assert pngs and all(cv2.imread(str(p)) is not None for p in pngs)


def test_tflite_on_all_threads_means_every_core_as_for_onnxruntime(idc_bundle):
    import os

    from edgehisto.bench.variants import make_variant
    from edgehisto.bundle.manifest import load_bundle

    bundle = load_bundle(idc_bundle)
    stage = bundle.stages[bundle.entry_stage]
    assert make_variant("tflite_int8", bundle, stage, threads=None).threads == os.cpu_count()
    assert make_variant("tflite_int8", bundle, stage, threads=1).threads == 1


def test_bench_of_a_runtime_hierarchy_skips_what_the_bundle_does_not_ship_and_times_routing(
        hierarchy_bundle, synth_breakhis_dir):
    from edgehisto.bench.run import BenchConfig, run_bench

    _, bundle = hierarchy_bundle  # exported without TFLite files
    report = run_bench([bundle], synth_breakhis_dir, BenchConfig(repeats=3, batch=4, limit=12, process_repeats=1,
                                                                 profile_runs=2, keras_repeats=3), log=lambda _: None)
    result = report["bundles"][0]
    for rows in result["stages"].values():
        assert "skipped" in rows["tflite_int8"] and "latency_all_threads" in rows["onnx_int8"]
    routed = result["routed"]["onnx_int8"]
    assert routed["stages_ran"][0] == "binary" and len(routed["stages_ran"]) == 2
    assert {"latency_all_threads", "latency_file", "latency_stages_only"} <= set(routed)
    names = {t["target"] for t in result["targets"]}
    assert "routed: ONNX int8 classify (tensor) / its stages' session runs" in names
    assert not any("TFLite" in name for name in names)  # no TFLite here: no verdict about it
    assert "multitask_vs_hierarchy" not in report  # one bundle: nothing to compare


def test_bench_reads_bundles_only_and_loads_tensorflow_only_for_the_keras_reference():
    import ast
    from pathlib import Path

    import edgehisto.bench

    rooms, heavy = {"bench", "runtime", "bundle", "datasets", "errors"}, ("tensorflow", "keras", "tf2onnx")
    offences = []
    for path in sorted(Path(edgehisto.bench.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text())
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                parts = module.split(".")
                if parts[0] == "edgehisto" and len(parts) > 1 and parts[1] not in rooms:
                    offences.append(f"{path.name}:{node.lineno} imports {module}")
                if parts[0] in heavy and (id(node) in top_level or path.name != "variants.py"):
                    offences.append(f"{path.name}:{node.lineno} imports {module} outside the Keras reference")
    assert offences == []
