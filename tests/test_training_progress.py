"""Training shows its progress inside epochs: Keras's bar on a terminal, a few lines in a log."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="training needs the [train] extra")

EDGEHISTO = Path(sys.executable).with_name("edgehisto")


def fit_tiny(verbose: int, every_seconds: float) -> list[str]:
    import keras

    from edgehisto.train.fit import fit_progress

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    x, y = np.random.default_rng(0).random((24, 4)), np.zeros((24, 1))
    lines: list[str] = []
    model.fit(x, y, batch_size=4, epochs=2, verbose=0,
              callbacks=[fit_progress(lines.append, "model", verbose, every_seconds=every_seconds)])
    return lines


def test_a_line_says_fitting_starts_before_the_first_step():
    lines = fit_tiny(verbose=1, every_seconds=0)
    assert lines == ["fitting model: 2 epoch(s) of 6 steps; the first step also builds the graph"]


def test_without_keras_bar_steps_are_reported_no_more_often_than_asked():
    every_step = fit_tiny(verbose=2, every_seconds=0)
    assert every_step[1] == "model: epoch 1/2, step 1/6, loss " + every_step[1].rsplit(" ", 1)[1]
    assert len(every_step) == 1 + 12
    assert len(fit_tiny(verbose=2, every_seconds=3600)) == 1  # a fast epoch: only Keras's epoch line


@pytest.fixture(scope="module")
def small_idc(tmp_path_factory) -> Path:
    from edgehisto.datasets.synth_idc import synthesize_idc

    out = tmp_path_factory.mktemp("idc")
    synthesize_idc(out, 96, seed=1, n_patients=4)
    return out


def train_args(data: Path, run: Path) -> list[str]:
    return [str(EDGEHISTO), "train", "idc", str(data), "--out", str(run), "--epochs", "1", "--input-size", "64"]


@pytest.mark.slow
def test_in_a_log_training_prints_a_line_per_epoch_and_says_first_what_it_does(small_idc, tmp_path):
    done = subprocess.run(train_args(small_idc, tmp_path / "run"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.splitlines()[0].startswith("training idc_cnn on ")
    assert "fitting model: 1 epoch(s) of " in done.stderr
    assert "━" not in done.stdout and "\r" not in done.stdout and "\b" not in done.stdout  # no bar redraws
    assert len((done.stdout + done.stderr).splitlines()) < 25


@pytest.mark.slow
def test_on_a_terminal_training_draws_keras_per_step_bar(small_idc, tmp_path):
    primary, secondary = os.openpty()
    chunks: list[bytes] = []

    def drain():
        while True:
            try:
                data = os.read(primary, 4096)
            except OSError:  # the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    done = subprocess.run(train_args(small_idc, tmp_path / "run"), stdout=secondary, stderr=subprocess.PIPE,
                          timeout=600)
    os.close(secondary)
    reader.join(timeout=10)
    os.close(primary)
    shown = b"".join(chunks).decode("utf-8", errors="replace")
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert "━" in shown  # Keras's progress bar, drawn per step
