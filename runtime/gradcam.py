"""Grad-CAM from activations and gradients, plus pure overlay helpers (numpy + OpenCV).

The gradients come from the bundle's ``head_gradient`` graph (see ``export/onnx_grad.py``):
d(class score)/d(activations), where the class score is the pre-activation logit.

For a single-sigmoid model (IDC) the map is always the **positive-class** (IDC evidence) map,
whatever the prediction. The negative-class map, ReLU of the negated sum, is a padding artefact
on the embedded model: the Grad-CAM layer's channel offsets make the positive-class sum positive
in ~98% of cells, so its negation survives the ReLU only in a few cells, and those sit on the
zero-padded border (the peak was in column 14 of 16 for 78% of negative tiles, followed the
tissue under a horizontal flip for 7%, and scored 0.01 in the pointing game on synthetic lesions
against 0.85 for the positive-class map). A negative tile then shows weak IDC evidence, drawn on
the bundle's fixed display scale so that it does not glow like a positive one.
"""

from __future__ import annotations

import cv2
import numpy as np


def gradcam(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Grad-CAM maps (N, h, w) from NHWC activations and gradients of the class score.

    weights = spatial mean of the gradient; map = ReLU(sum over channels of weights * A).
    """
    weights = gradients.mean(axis=(1, 2), keepdims=True)
    return np.maximum((weights * activations).sum(axis=-1), 0.0).astype(np.float32)


def score_seed(output: str, n_logits: int, class_indices: np.ndarray) -> np.ndarray:
    """d(class score)/d(logits) for each row: one-hot on the class, or 1 for a single-sigmoid model.

    A sigmoid model's score is its logit, the positive-class evidence, for every row (see the
    module docstring for why the negative class gets no map of its own).
    """
    class_indices = np.asarray(class_indices)
    if output == "sigmoid":
        return np.ones((len(class_indices), 1), np.float32)
    seed = np.zeros((len(class_indices), n_logits), np.float32)
    seed[np.arange(len(class_indices)), class_indices] = 1.0
    return seed


def normalize_map(cam: np.ndarray, peak: float | None = None) -> np.ndarray:
    """Scale one map to [0, 1]: by ``peak`` (a fixed display scale, clipped) or by its own maximum.

    An all-zero map stays zero.
    """
    peak = (float(cam.max()) if cam.size else 0.0) if peak is None else float(peak)
    if peak <= 0:
        return np.zeros_like(cam, np.float32)
    return np.clip(cam / peak, 0.0, 1.0).astype(np.float32)


def overlay(rgb: np.ndarray, cam: np.ndarray, alpha: float = 0.4, peak: float | None = None) -> np.ndarray:
    """Blend a JET-coloured, upsampled Grad-CAM map over an 8-bit RGB tile (returns RGB uint8).

    ``peak`` is the map value drawn at full colour (default: the map's own maximum). The caller's
    arrays are not modified.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"overlay needs an 8-bit RGB image, got {rgb.dtype} {rgb.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    unit = normalize_map(np.asarray(cam, np.float32), peak)
    resized = cv2.resize(unit, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    heat_bgr = cv2.applyColorMap(np.uint8(np.clip(resized, 0, 1) * 255), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat_bgr, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(heat, alpha, rgb, 1.0 - alpha, 0.0)


PANEL_SIDE = 256  # pixels per image in a panel: a 128x128 input drawn at 2x, nearest neighbour
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def explained_class(output: str, n_classes: int, predicted: int) -> int:
    """The class whose score a stage's Grad-CAM map explains (the rule of ``score_seed``).

    A single-sigmoid stage's map is always the positive class's evidence (e.g. IDC evidence), even for
    a tile called negative; a softmax stage's map explains the predicted class.
    """
    return n_classes - 1 if output == "sigmoid" else int(predicted)


def map_meaning(output: str, class_names: tuple[str, ...] | list[str]) -> str:
    """What a stage's maps show, in words for a figure title."""
    return f"{class_names[-1]} evidence" if output == "sigmoid" else "evidence for the predicted class"


def gradcam_panel(rgb: np.ndarray, cam: np.ndarray, title: str, peak: float | None = None) -> np.ndarray:
    """A PNG-ready RGB panel a person can read: a title line (stage, label, probability), the
    model-input tile and its Grad-CAM overlay side by side at ``PANEL_SIDE`` pixels or more, and a
    colour bar that says what full colour means (``peak``, or the map's own maximum)."""
    side = max(PANEL_SIDE, *rgb.shape[:2])
    scale = side / max(rgb.shape[:2])
    size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
    tile = cv2.resize(rgb, size, interpolation=cv2.INTER_NEAREST)
    blended = cv2.resize(overlay(rgb, cam, peak=peak), size, interpolation=cv2.INTER_NEAREST)
    margin, header, bar_width, legend = 10, 58, 18, 70
    height = header + size[1] + 2 * margin
    width = 3 * margin + 2 * size[0] + margin + bar_width + legend
    canvas = np.full((height, width, 3), 255, np.uint8)
    top = header + margin
    canvas[top:top + size[1], margin:margin + size[0]] = tile
    left = 2 * margin + size[0]
    canvas[top:top + size[1], left:left + size[0]] = blended
    ramp = np.linspace(255, 0, size[1]).astype(np.uint8)[:, None].repeat(bar_width, axis=1)
    bar = cv2.cvtColor(cv2.applyColorMap(ramp, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    bar_left = left + size[0] + 2 * margin
    canvas[top:top + size[1], bar_left:bar_left + bar_width] = bar
    ink = (20, 20, 20)
    cv2.putText(canvas, title, (margin, 24), _FONT, 0.6, ink, 1, cv2.LINE_AA)
    cv2.putText(canvas, "left: model input   right: Grad-CAM overlay   bar: Grad-CAM value", (margin, 48), _FONT,
                0.45, (90, 90, 90), 1, cv2.LINE_AA)
    # The top tick says what it is: the map value drawn at full colour (the stage's fixed peak, or
    # this map's own maximum), not an unexplained number.
    legend_x = bar_left + bar_width + 4
    cv2.putText(canvas, "full", (legend_x, top + 12), _FONT, 0.42, ink, 1, cv2.LINE_AA)
    cv2.putText(canvas, f"= {peak:.3g}" if peak else "= map max", (legend_x, top + 28), _FONT, 0.42, ink, 1,
                cv2.LINE_AA)
    cv2.putText(canvas, "0", (legend_x, top + size[1]), _FONT, 0.42, ink, 1, cv2.LINE_AA)
    return canvas
