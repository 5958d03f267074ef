"""Training writes curves a person can read, even after one epoch."""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                reason="matplotlib comes with the [train] extra")


def test_a_one_epoch_history_draws_a_visible_marker_for_every_series():
    from matplotlib import pyplot as plt

    from edgehisto.metrics.figures import history_figure

    fig = history_figure({"loss": [0.7], "val_loss": [0.6], "accuracy": [0.5], "val_accuracy": [0.55]})
    lines = [line for ax in fig.axes for line in ax.lines]
    plt.close(fig)
    # a single point joined to nothing is invisible unless it has a marker
    assert len(lines) == 4
    assert all(line.get_marker() not in (None, "", " ", "None") and line.get_markersize() > 0 for line in lines)


@pytest.mark.parametrize("epochs", [1, 3, 40])
def test_the_epoch_axis_shows_whole_epochs_only(epochs):
    from matplotlib import pyplot as plt

    from edgehisto.metrics.figures import history_figure

    fig = history_figure({"loss": [0.7] * epochs, "val_loss": [0.6] * epochs})
    fig.canvas.draw()
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    shown = [t for t in ax.get_xticks() if low <= t <= high]
    plt.close(fig)
    assert shown and all(float(t).is_integer() for t in shown)
    assert low < 1 and high > epochs


def test_the_curves_png_is_written(tmp_path):
    from edgehisto.metrics.figures import plot_history

    plot_history({"loss": [0.7], "val_loss": [0.6]}, tmp_path / "model_curves.png")
    assert (tmp_path / "model_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
