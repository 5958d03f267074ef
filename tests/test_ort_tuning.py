"""The onnxruntime tuning: export-variants writes the alternatives, bench times them against the bundle."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")

FACTORS = {f"{sweep}_{precision}" for sweep in ("threads", "spinning", "optimization", "execution")
           for precision in ("fp32", "int8")} | {"quantization", "layout_fp32", "layout_int8", "tflite"}


@pytest.fixture(scope="module")
def variants_dir(idc_bundle, synth_idc_dir, tmp_path_factory):
    """``edgehisto export-variants`` run through the top-level CLI on the small IDC bundle."""
    from click.testing import CliRunner

    from edgehisto.cli import cli

    out = tmp_path_factory.mktemp("variants")
    result = CliRunner().invoke(cli, ["export-variants", str(idc_bundle), "--data", str(synth_idc_dir),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def tuning(idc_bundle, variants_dir, synth_idc_dir):
    from edgehisto.bench.ort_tuning import tune_onnxruntime

    return tune_onnxruntime(idc_bundle, variants_dir, synth_idc_dir, repeats=3, limit=16)


def test_export_variants_writes_every_variant_file_and_describes_it(variants_dir, idc_bundle):
    from edgehisto.bundle.manifest import load_bundle, sha256_of
    from edgehisto.export.variants import QUANT_VARIANTS, held_out_relpaths

    described = json.loads((variants_dir / "variants.json").read_text())
    kinds = [(v["kind"], v["precision"], v["layout"]) for v in described["variants"]]
    assert kinds == [("quantization", "int8", "NHWC")] * len(QUANT_VARIANTS) + [
        ("layout", "fp32", "NCHW"), ("layout", "int8", "NCHW")]
    assert [v["name"] for v in described["variants"][:len(QUANT_VARIANTS)]] == list(QUANT_VARIANTS)
    for variant in described["variants"]:
        assert sha256_of(variants_dir / variant["file"]) == variant["sha256"]
        assert variant["transposes"]["in_file"] >= variant["transposes"]["after_onnxruntime"] >= 0
    held_out = held_out_relpaths(load_bundle(idc_bundle))
    assert held_out and f"{len(held_out)} held-out tiles of the bundle left out" in described["calibration"]["source"]
    assert described["calibration"]["n"] > 0 and set(described["bundle_backbones"]) == {"fp32", "int8"}


def test_tuning_measures_every_factor_with_one_chosen_row(tuning):
    assert set(tuning["factors"]) == FACTORS
    for name, factor in tuning["factors"].items():
        rows = factor["rows"]
        assert all(r["median_ms"] > 0 and r["p95_ms"] >= r["median_ms"] for r in rows), name
        assert any(r["chosen"] for r in rows), name
        assert factor["conclusion"] and len(factor["loadavg_before"]) == 3
    assert "held-out tiles of the bundle left out" in tuning["variants"]["calibration"]["source"]
    assert not tuning["notes"]


def test_quantization_variants_agree_with_fp32_within_unit_range(tuning):
    rows = tuning["factors"]["quantization"]["rows"]
    assert len(rows) == 7 and sum(r["chosen"] for r in rows) == 1
    assert all(0.0 <= r["top1_agreement"] <= 1.0 and 0.0 <= r["max_abs_prob_diff"] <= 1.0 for r in rows)


def test_nchw_conversion_matches_the_bundle_and_drops_the_input_transpose(tuning):
    fp32 = {r["variant"]: r for r in tuning["factors"]["layout_fp32"]["rows"]}
    nhwc, nchw = fp32["NHWC (bundle)"], fp32["NCHW, input pre-transposed"]
    assert nchw["transposes"] == nhwc["transposes"] - 1
    assert nchw["max_abs_prob_diff_vs_nhwc"] <= 1e-5  # same float graph, only the input layout moved


def test_tuning_report_has_a_table_per_factor(tuning, tmp_path):
    from edgehisto.bench.tuning_report import write_tuning_report

    paths = write_tuning_report(tuning, tmp_path)
    assert [p.name for p in paths] == ["ort_tuning.json", "ort_tuning.md"]
    assert set(json.loads(paths[0].read_text())["factors"]) == FACTORS
    markdown = paths[1].read_text()
    for factor in tuning["factors"].values():
        section = markdown.split(f"## {factor['title']}\n", 1)[1]
        assert section.lstrip().startswith("| variant |") and "Conclusion: " in section


def test_variants_of_another_bundle_or_changed_files_are_refused(idc_bundle, variants_dir, tmp_path):
    from edgehisto.bench.ort_tuning import read_variants
    from edgehisto.bundle.manifest import load_bundle
    from edgehisto.errors import EdgehistoError

    bundle = load_bundle(idc_bundle)
    assert len(read_variants(variants_dir, bundle)["variants"]) == 9
    other = shutil.copytree(variants_dir, tmp_path / "other")
    described = json.loads((other / "variants.json").read_text())
    described["bundle"]["backbone_fp32_sha256"] = "0" * 64
    (other / "variants.json").write_text(json.dumps(described))
    with pytest.raises(EdgehistoError, match="exported from another bundle"):
        read_variants(other, bundle)
    changed = shutil.copytree(variants_dir, tmp_path / "changed")
    (changed / "nchw.int8.onnx").write_bytes(b"not a model")
    with pytest.raises(EdgehistoError, match="missing or changed"):
        read_variants(changed, bundle)
    with pytest.raises(EdgehistoError, match="export-variants"):
        read_variants(tmp_path, bundle)


def test_bench_and_export_clis_offer_the_tuning_flow():
    from click.testing import CliRunner

    from edgehisto.cli import cli

    runner = CliRunner()
    assert "--tuning-variants DIRECTORY" in runner.invoke(cli, ["bench", "--help"]).output
    help_text = runner.invoke(cli, ["export-variants", "--help"]).output
    assert "--data DIRECTORY" in help_text and "--out DIRECTORY" in help_text


def test_a_speedup_that_does_not_win_most_rounds_is_called_noise():
    from edgehisto.bench.ort_tuning import conclude

    rows = [{"variant": "current", "chosen": True, "median_ms": 6.0, "round_medians_ms": [2.0, 9.0, 2.1, 9.5, 2.2]},
            {"variant": "same graph", "chosen": False, "median_ms": 2.4, "round_medians_ms": [2.1, 2.3, 2.4, 2.5, 2.6]}]
    assert "2.50x, same graph faster in 2/5 rounds: within noise" in conclude(rows)
    rows[0]["round_medians_ms"] = [9.0] * 5
    assert conclude(rows).endswith("faster in 5/5 rounds: consistent")


def test_interleaved_rounds_time_every_call_in_turn():
    from edgehisto.bench.timing import interleaved

    order = []
    stats = interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=4, burst=2)
    assert order == ["a"] * 3 + ["b"] * 3 + ["b"] * 3 + ["a"] * 3  # one untimed call + a burst; rotating start
    assert all(len(s["round_medians_ms"]) == 2 and s["p95_ms"] >= s["median_ms"] >= 0 for s in stats.values())
