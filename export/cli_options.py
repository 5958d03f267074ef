"""Click options shared by ``export`` and ``check-parity``: the gate thresholds.

Defaults come from ``Thresholds`` itself, so the documented numbers have one home.
"""

from __future__ import annotations

import functools

import click

from edgehisto.bundle.gates import Thresholds

DEFAULTS = Thresholds()


def gate_threshold_options(command):
    """Add the gate-threshold options and pass a ``thresholds: Thresholds`` to the command."""

    @click.option("--max-prob-diff", default=DEFAULTS.fp32_max_abs_diff, show_default=True, type=float,
                  help="fp32 gate: max |p_onnx - p_keras|.")
    @click.option("--min-agreement", default=DEFAULTS.int8_min_agreement, show_default=True,
                  type=click.FloatRange(0, 1), help="int8 gate: top-1 agreement with Keras.")
    @click.option("--max-accuracy-drop", default=DEFAULTS.int8_max_accuracy_drop, show_default=True, type=float,
                  help="int8 gate: accuracy drop vs Keras (0.01 = 1 point).")
    @click.option("--min-pearson", default=DEFAULTS.gradcam_min_pearson, show_default=True,
                  type=click.FloatRange(-1, 1), help="fp32 Grad-CAM gate: per-map Pearson r vs GradientTape.")
    @click.option("--min-int8-gradcam-pearson", default=DEFAULTS.gradcam_int8_min_mean_pearson,
                  show_default=True, type=click.FloatRange(-1, 1),
                  help="int8 Grad-CAM gate: mean Pearson r of int8 maps vs GradientTape fp32 maps.")
    @functools.wraps(command)
    def wrapper(*args, max_prob_diff, min_agreement, max_accuracy_drop, min_pearson,
                min_int8_gradcam_pearson, **kwargs):
        thresholds = Thresholds(max_prob_diff, min_agreement, max_accuracy_drop, min_pearson,
                                min_int8_gradcam_pearson)
        return command(*args, thresholds=thresholds, **kwargs)

    return wrapper
