"""The files people look at: metrics JSON and confusion matrices (CSV, PNG), training curves (PNG)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def write_metrics(metrics: dict, out_dir: Path, stem: str, title: str) -> None:
    """Write ``<stem>.json``, ``<stem>_confusion.csv`` and ``<stem>_confusion.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(metrics, indent=2))
    names = metrics["class_names"]
    with open(out_dir / f"{stem}_confusion.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["true\\predicted", *names])
        for name, row in zip(names, metrics["confusion_matrix"], strict=True):
            writer.writerow([name, *row])
    plot_confusion_matrix(np.asarray(metrics["confusion_matrix"]), names, out_dir / f"{stem}_confusion.png", title)


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: Path, title: str) -> None:
    """Confusion matrix heat map with counts and row-normalised percentages."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, float), where=rows > 0)
    size = 2.2 + 0.9 * len(class_names)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, f"{count}\n{share[i, j]:.0%}", ha="center", va="center",
                color="white" if share[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks(range(len(class_names)), class_names, rotation=30, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def history_figure(history: dict[str, list[float]]):
    """A matplotlib figure of loss and accuracy per epoch, training vs validation."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        # multitask models log one accuracy per head (e.g. binary_probabilities_accuracy)
        names = [k for k in history if k.endswith(metric) and not k.startswith("val_")]
        for name in names:
            for prefix, style in (("", "o-"), ("val_", "s--")):
                values = history.get(prefix + name)
                if values:
                    # markers: a one-epoch run is a single point, which a bare line does not draw
                    ax.plot(range(1, len(values) + 1), values, style, markersize=4,
                            label=(prefix or "train_") + name)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        if metric == "accuracy":
            ax.set_ylim(-0.02, 1.02)  # the whole scale: a zoomed axis makes a few points' noise look like a trend
        if ax.lines:  # whole epochs only; matplotlib would centre one point on ticks like 0.995
            ax.set_xlim(0.5, max(len(line.get_xdata()) for line in ax.lines) + 0.5)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_history(history: dict[str, list[float]], path: Path) -> None:
    """Write loss and accuracy per epoch, training vs validation, as a PNG."""
    from matplotlib import pyplot as plt

    fig = history_figure(history)
    fig.savefig(path, dpi=110)
    plt.close(fig)
