"""Grad-CAM panels people look at: correct vs incorrect examples per class, one tile per class.

Each example is shown twice, the model-input tile and its JET overlay (``runtime.gradcam.overlay``),
so the eye can check what lies under the hot spot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgehisto.runtime.gradcam import overlay


@dataclass(frozen=True)
class PanelTile:
    """One example: the resized uint8 RGB model input, its Grad-CAM map and a caption."""

    image: np.ndarray
    cam: np.ndarray
    caption: str


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def _show(ax, picture: np.ndarray | None, caption: str = "") -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if picture is None:
        ax.text(0.5, 0.5, "none", ha="center", va="center", color="grey", transform=ax.transAxes)
        for side in ax.spines.values():
            side.set_visible(False)
    else:
        ax.imshow(picture)
    if caption:
        ax.set_title(caption, fontsize=8)


def write_class_panel(correct: Sequence[PanelTile], incorrect: Sequence[PanelTile], n: int,
                      title: str, path: Path) -> Path:
    """A 4 x n grid: correct tiles, their overlays, incorrect tiles, their overlays (PNG)."""
    plt = _pyplot()
    fig, axes = plt.subplots(4, n, figsize=(1.7 * n + 0.9, 7.4), squeeze=False)
    for block, (name, examples) in enumerate((("correct", correct), ("incorrect", incorrect))):
        tile_row, cam_row = axes[2 * block], axes[2 * block + 1]
        for column in range(n):
            example = examples[column] if column < len(examples) else None
            _show(tile_row[column], None if example is None else example.image,
                  "" if example is None else example.caption)
            _show(cam_row[column], None if example is None else overlay(example.image, example.cam))
        tile_row[0].set_ylabel(f"{name}\ntile", fontsize=9)
        cam_row[0].set_ylabel(f"{name}\nGrad-CAM", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_class_grid(tiles: Sequence[PanelTile | None], class_names: Sequence[str], title: str,
                     path: Path) -> Path:
    """One row per class: the original tile and its overlay (the IDC seed's 2x2 grid for 2 classes)."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(class_names), 2, figsize=(4.6, 2.3 * len(class_names) + 0.5), squeeze=False)
    for (tile_ax, cam_ax), name, example in zip(axes, class_names, tiles, strict=True):
        _show(tile_ax, None if example is None else example.image, "" if example is None else example.caption)
        _show(cam_ax, None if example is None else overlay(example.image, example.cam), "Grad-CAM")
        tile_ax.set_ylabel(name, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
