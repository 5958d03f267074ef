"""Scale-out: ``edgehisto batch`` on a local Ray instance matches single-process classify exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("pyarrow", reason="the [scale] extra is not installed")
pytest.importorskip("ray", reason="the [scale] extra is not installed")

from edgehisto.scale.batch import read_results  # noqa: E402
from tests.test_exit_codes import run  # noqa: E402

BAD = {"text.png": b"not an image\n", "empty.png": b"", "truncated.png": None}


@pytest.fixture(scope="module")
def tiles(tmp_path_factory) -> Path:
    """300 synthetic IDC tiles and three bad files, in nested folders."""
    from edgehisto.datasets.synth_idc import synthesize_idc

    root = tmp_path_factory.mktemp("batch") / "tiles"
    synthesize_idc(root, 300, seed=3)
    for mask in root.rglob("*_mask.png"):
        mask.unlink()
    good = next(root.rglob("*.png")).read_bytes()
    for name, data in BAD.items():
        (root / name).write_bytes(good[: len(good) // 2] if data is None else data)
    return root


def cli_records(tiles: Path, cwd: Path) -> dict[str, dict]:
    done = run("console script", "classify", tiles, "--precision", "int8", "--format", "json", cwd=cwd)
    assert done.returncode == 1  # the bad files
    return {r["path"]: r for r in json.loads(done.stdout)}


def same_as_cli(row: dict, record: dict) -> bool:
    if "error" in record:
        return row["error"] == record["error"] and row["label"] is None
    probabilities = {k[2:]: v for k, v in row.items() if k.startswith("p_") and v is not None}
    return row["error"] is None and row["label"] == record["label"] and probabilities == record["probabilities"]


def test_ray_rows_equal_single_process_classify_exactly_and_every_input_appears_once(tiles, tmp_path):
    out = tmp_path / "results.parquet"
    done = run("console script", "batch", tiles, "--out", out, "--engine", "ray", "--workers", "2", cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # three inputs have errors
    rows = read_results(out)
    expected = cli_records(tiles, tmp_path)
    assert sorted(r["path"] for r in rows) == sorted(expected)  # each input exactly once
    mismatched = [r["path"] for r in rows if not same_as_cli(r, expected[r["path"]])]
    assert mismatched == []
    models = json.loads(run("console script", "models", "--json", "--no-verify", cwd=tmp_path).stdout)
    assert {r["bundle_sha256"] for r in rows} == {m["manifest_sha256"] for m in models if m["default"]}
    assert {Path(r["path"]).name for r in rows if r["error"]} == set(BAD)
    # A normal run is quiet: no Ray warning or error log line; the failed inputs are named on stderr.
    noise = [line for line in done.stderr.splitlines()
             if any(word in line for word in ("WARNING", "core_worker", " E ", "INFO", "Token authentication"))]
    assert noise == []
    assert {Path(line.split(": ")[1]).name for line in done.stderr.splitlines() if line.startswith("error: ")} \
        == set(BAD)


def test_a_rerun_skips_what_is_done_and_appends_the_rest(tiles, tmp_path):
    out = tmp_path / "results.parquet"
    first_half = tmp_path / "first"
    shutil.copytree(tiles, first_half)
    originals = sorted(p for p in first_half.rglob("*.png"))
    for extra in originals[len(originals) // 2:]:
        extra.unlink()
    kept = len(list(first_half.rglob("*.png")))
    # An interrupted job: what was written stays; the rerun over everything adds the rest only.
    assert run("console script", "batch", first_half, "--out", out, cwd=tmp_path).returncode in (0, 1)
    shutil.rmtree(first_half)
    shutil.copytree(tiles, first_half)
    done = run("console script", "batch", first_half, "--out", out, "--engine", "ray", "--workers", "2",
               "--csv", tmp_path / "all.csv", cwd=tmp_path)
    assert f"{kept} skipped as already done" in done.stderr, done.stderr
    rows = read_results(out)
    assert len(rows) == len({r["path"] for r in rows}) == len(list(first_half.rglob("*.png")))
    assert len((tmp_path / "all.csv").read_text().splitlines()) == len(rows) + 1


def few_negatives(tiles: Path, folder: Path, count: int) -> Path:
    """A folder with the first ``count`` class-0 tiles, flat."""
    folder.mkdir()
    for tile in sorted(tiles.rglob("*class0.png"))[:count]:
        shutil.copy(tile, folder / tile.name)
    return folder


def test_a_changed_file_is_classified_again(tiles, tmp_path):
    folder = few_negatives(tiles, tmp_path / "few", 3)
    out = tmp_path / "out"
    assert run("console script", "batch", folder, "--out", out, cwd=tmp_path).returncode == 0
    changed = sorted(folder.iterdir())[0]
    shutil.copy(sorted(tiles.rglob("*class1.png"))[0], changed)
    done = run("console script", "batch", folder, "--out", out, cwd=tmp_path)
    assert "1 rows written" in done.stderr and "2 skipped" in done.stderr, done.stderr
    assert len([r for r in read_results(out) if r["path"] == str(changed)]) == 2  # both versions are kept


def test_a_csv_list_of_paths_is_a_source(tiles, tmp_path):
    listing = tmp_path / "list.csv"
    chosen = sorted(str(p) for p in tiles.rglob("*.png"))[:5]
    listing.write_text("path\n" + "\n".join(chosen) + "\n")
    out = tmp_path / "out"
    run("console script", "batch", listing, "--out", out, cwd=tmp_path)
    assert sorted(r["path"] for r in read_results(out)) == chosen


def test_a_part_cut_short_by_an_interruption_does_not_stop_the_rerun(tiles, tmp_path):
    folder = few_negatives(tiles, tmp_path / "few", 4)
    out = tmp_path / "out"
    assert run("console script", "batch", folder, "--out", out, cwd=tmp_path).returncode == 0
    (part,) = out.glob("*.parquet")
    part.write_bytes(part.read_bytes()[:100])  # what a kill in the middle of a write leaves
    done = run("console script", "batch", folder, "--out", out, cwd=tmp_path)
    assert done.returncode == 0 and "unreadable part" in done.stderr, done.stderr
    assert sorted(r["path"] for r in read_results(out)) == sorted(str(p) for p in folder.iterdir())


@pytest.mark.parametrize("address", [None, "auto"])
def test_the_false_no_cpus_warning_is_dropped_only_on_a_ray_that_edgehisto_started(monkeypatch, caplog, address):
    import logging

    import ray

    from edgehisto.scale.ray_session import ray_session

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **_: None)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    line = ("Warning: The Ray cluster currently does not have any available CPUs. The Dataset job will hang "
            "unless more CPUs are freed up.")
    dataset_log = logging.getLogger("ray.data.dataset")
    with caplog.at_level(logging.WARNING, logger="ray.data.dataset"), ray_session(2, address):
        dataset_log.warning(line)
        dataset_log.warning("another warning")
    messages = [record.getMessage() for record in caplog.records]
    assert "another warning" in messages
    assert (line in messages) == (address is not None)  # a joined cluster may really be out of CPUs
    dataset_log.warning(line)  # the session is over: the filter is gone
    assert [record.getMessage() for record in caplog.records].count(line) == (2 if address else 1)
