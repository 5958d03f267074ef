"""``edgehisto default-model``: a thin command over ``release/default_model.py``'s library functions."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from edgehisto.cli import cli


def invoke(*args: str):
    return CliRunner().invoke(cli, ["default-model", *args])


def test_default_model_is_a_command_of_the_cli():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0 and "default-model" in result.output


def test_default_model_needs_a_candidate_and_has_no_way_to_rebuild_a_run_from_a_bundle(tmp_path):
    neither = invoke("--data", str(tmp_path))
    assert neither.exit_code == 2 and "give at least one RUN:BUNDLE candidate" in neither.output
    backwards = invoke("--data", str(tmp_path), "--reexport", str(tmp_path / "work"))
    assert backwards.exit_code == 2 and "No such option" in backwards.output


@pytest.mark.parametrize("candidate", ["runs/idc50", "runs/idc50:", ":bundles/idc50", "missing-run:missing-bundle"])
def test_a_malformed_or_missing_candidate_is_a_usage_error(tmp_path, candidate):
    result = invoke("--data", str(tmp_path), candidate)
    assert result.exit_code == 2 and "Invalid value for '[RUN:BUNDLE]...'" in result.output


def test_installing_without_candidates_raises_an_export_error(tmp_path):
    pytest.importorskip("tensorflow")
    from edgehisto.errors import ExportError
    from edgehisto.release.default_model import install

    with pytest.raises(ExportError, match="no candidate"):
        install([], tmp_path, dest=tmp_path / "dest")
