"""A tiny bench run: every variant measured, targets judged, JSON/Markdown/PNG written."""

from __future__ import annotations

import json

import cv2
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")


def test_bench_measures_every_variant_and_writes_reports(idc_bundle, tmp_path):
    from edgehisto.bench.report import write_reports
    from edgehisto.bench.run import BenchConfig, run_bench
    from edgehisto.bench.variants import VARIANTS

    report = run_bench([idc_bundle], None, BenchConfig(repeats=3, batch=4, limit=16, process_repeats=1),
                       log=lambda _: None)
    rows = report["bundles"][0]["stages"]["idc"]
    assert list(rows) == list(VARIANTS)
    assert rows["keras_fp32"]["agreement_with_keras"] == 1.0
    for kind in ("onnx_fp32", "tflite_fp32"):  # fp32 exports agree with Keras on every tile
        assert rows[kind]["agreement_with_keras"] == 1.0
    assert all(r["latency_all_threads"]["median_ms"] > 0 and r["size_mb"] > 0 for r in rows.values())
    assert "gradcam_cost_ratio" in rows["onnx_int8"]
    process = report["bundles"][0]["process"]
    assert process["classify_int8"]["exit_codes"] == [0] and process["keras_predict"]["exit_codes"] == [0]
    assert {t["target"].split(":")[0] for t in report["bundles"][0]["targets"]} >= {"idc", "peak RSS of classify (MB)"}

    written = write_reports(report, tmp_path)
    assert json.loads((tmp_path / "bench.json").read_text())["machine"]["cores"] >= 1
    assert "| onnx_int8 |" in (tmp_path / "bench.md").read_text()
    pngs = [p for p in written if p.suffix == ".png"]
    assert pngs and all(cv2.imread(str(p)) is not None for p in pngs)


def test_bench_reads_bundles_only_and_loads_tensorflow_only_for_the_keras_reference():
    import ast
    from pathlib import Path

    import edgehisto.bench

    rooms, heavy = {"bench", "runtime", "bundle", "data", "errors"}, ("tensorflow", "keras", "tf2onnx")
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
