"""The onnxruntime tuning run: every factor measured on a small bundle, reported as JSON and Markdown."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")

FACTORS = {f"{sweep}_{precision}" for sweep in ("threads", "spinning", "optimization", "execution")
           for precision in ("fp32", "int8")} | {"quantization", "layout_fp32", "layout_int8", "tflite"}


@pytest.fixture(scope="module")
def tuning(idc_bundle):
    from edgehisto.bench.ort_tuning import tune_onnxruntime

    return tune_onnxruntime(idc_bundle, repeats=3, limit=16, log=lambda _: None)


def test_tuning_measures_every_factor_with_one_chosen_row(tuning):
    assert set(tuning["factors"]) == FACTORS
    for name, factor in tuning["factors"].items():
        rows = factor["rows"]
        assert all(r["median_ms"] > 0 and r["p95_ms"] >= r["median_ms"] for r in rows), name
        assert any(r["chosen"] for r in rows), name
        assert factor["conclusion"] and len(factor["loadavg_before"]) == 3
    assert tuning["calibration"]["source"].startswith("train split")  # the fixture's run is still here
    assert not tuning["notes"]


def test_quantization_variants_agree_with_fp32_within_unit_range(tuning):
    rows = tuning["factors"]["quantization"]["rows"]
    assert len(rows) == 6 and sum(r["chosen"] for r in rows) == 1
    assert all(0.0 <= r["top1_agreement"] <= 1.0 and 0.0 <= r["max_abs_prob_diff"] <= 1.0 for r in rows)


def test_nchw_conversion_matches_the_bundle_and_drops_the_input_transpose(tuning):
    fp32 = {r["variant"]: r for r in tuning["factors"]["layout_fp32"]["rows"]}
    nhwc, nchw = fp32["NHWC (bundle)"], fp32["NCHW, input pre-transposed"]
    assert nchw["transposes"] == nhwc["transposes"] - 1
    assert nchw["max_abs_prob_diff_vs_nhwc"] <= 1e-5  # same float graph, only the input layout moved


def test_tuning_report_has_a_table_per_factor(tuning, tmp_path):
    from edgehisto.bench.ort_tuning import write_tuning_report

    paths = write_tuning_report(tuning, tmp_path)
    assert [p.name for p in paths] == ["ort_tuning.json", "ort_tuning.md"]
    assert set(json.loads(paths[0].read_text())["factors"]) == FACTORS
    markdown = paths[1].read_text()
    for factor in tuning["factors"].values():
        section = markdown.split(f"## {factor['title']}\n", 1)[1]
        assert section.lstrip().startswith("| variant |") and "Conclusion: " in section


def test_bench_cli_offers_the_tuning_switch():
    from click.testing import CliRunner

    from edgehisto.bench.cli_bench import bench

    help_text = CliRunner().invoke(bench, ["--help"]).output
    assert "--tuning / --no-tuning" in help_text


def test_a_speedup_that_does_not_win_most_rounds_is_called_noise():
    from edgehisto.bench.ort_tuning import conclude

    rows = [{"variant": "current", "chosen": True, "median_ms": 6.0, "round_medians_ms": [2.0, 9.0, 2.1, 9.5, 2.2]},
            {"variant": "same graph", "chosen": False, "median_ms": 2.4, "round_medians_ms": [2.1, 2.3, 2.4, 2.5, 2.6]}]
    assert "2.50x, same graph faster in 2/5 rounds: within noise" in conclude(rows)
    rows[0]["round_medians_ms"] = [9.0] * 5
    assert conclude(rows).endswith("faster in 5/5 rounds: consistent")
