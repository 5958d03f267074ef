"""Binary and multiclass metrics, the patient vote and grouped k-fold (see the package docstring).

scikit-learn is imported here, at the top: a command that measures needs the ``[train]`` extra and
says so in one line before it starts (the runtime never imports this room).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedGroupKFold


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy, per-class precision/recall/F1/support and the confusion matrix.

    The balanced accuracy is the mean recall over the classes present in ``y_true``, as scikit-learn
    defines it; per-class recall of an absent class is reported with support 0.
    """
    labels = list(range(len(class_names)))
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=list(class_names), output_dict=True, zero_division=0
    )
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(report["macro avg"]["f1-score"]),
        "per_class": {name: {k: float(v) for k, v in report[name].items()} for name in class_names},
        "class_names": list(class_names),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def binary_figures(truth: np.ndarray, predicted: np.ndarray) -> dict:
    """Accuracy, balanced accuracy, sensitivity (recall of class 1) and specificity (recall of class 0).

    A class with no tile has recall None, and the balanced accuracy is then None too.
    """
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    sensitivity = float((predicted[truth == 1] == 1).mean()) if (truth == 1).any() else None
    specificity = float((predicted[truth == 0] == 0).mean()) if (truth == 0).any() else None
    balanced = None if sensitivity is None or specificity is None else (sensitivity + specificity) / 2
    return {"n": int(len(truth)), "accuracy": float((truth == predicted).mean()) if len(truth) else None,
            "balanced_accuracy": balanced, "sensitivity": sensitivity, "specificity": specificity,
            "confusion_matrix": [[int(((truth == t) & (predicted == p)).sum()) for p in (0, 1)] for t in (0, 1)]}


def binary_metrics(y_true: np.ndarray, p_positive: np.ndarray, threshold: float = 0.5) -> dict:
    """``binary_figures`` at a threshold on P(class 1), plus F1 and ROC AUC (None with one class)."""
    y_true = np.asarray(y_true)
    y_pred = (np.asarray(p_positive) >= threshold).astype(int)
    return {**binary_figures(y_true, y_pred), "f1": float(f1_score(y_true, y_pred, zero_division=0)),
            "roc_auc": float(roc_auc_score(y_true, p_positive)) if len(set(y_true.tolist())) == 2 else None}


def vote(labels: np.ndarray, groups: np.ndarray, n_classes: int,
         probabilities: np.ndarray | None = None) -> tuple[list[str], np.ndarray]:
    """Per group (a patient or slide), the majority label: (sorted group names, voted labels).

    A tie goes to the tied class with the higher mean probability over the group when
    ``probabilities`` (N, n_classes) are given, else to the lower class index.
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    names, voted = sorted(set(groups.tolist())), []
    for name in names:
        rows = groups == name
        counts = np.bincount(labels[rows], minlength=n_classes)
        tied = np.flatnonzero(counts == counts.max())
        if probabilities is not None and len(tied) > 1:
            voted.append(int(tied[np.argmax(np.asarray(probabilities)[rows].mean(0)[tied])]))
        else:
            voted.append(int(tied[0]))
    return names, np.array(voted, dtype=np.int64)


def patient_vote(truth: np.ndarray, probabilities: np.ndarray, patients: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per patient (truth by majority, prediction by ``vote`` of the argmax labels with their probabilities)."""
    probabilities = np.asarray(probabilities)
    _, truths = vote(truth, patients, probabilities.shape[1])
    _, votes = vote(probabilities.argmax(1), patients, probabilities.shape[1], probabilities)
    return truths, votes


def spread_text(figure: dict) -> str:
    """``mean ± sd`` of a figure summarised over folds, or a dash when no fold could measure it."""
    return "—" if figure.get("mean") is None else f"{figure['mean']:.3f} ± {figure['sd']:.3f}"


def grouped_folds(labels: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> list[np.ndarray]:
    """Held-out index arrays of a shuffled ``StratifiedGroupKFold`` over ``groups``, stratified by ``labels``.

    Every group is held out exactly once; the fold count is capped at the number of groups.
    """
    n_folds = max(2, min(n_folds, len(np.unique(groups))))
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # thin classes: fewer members than folds
        return [held for _, held in splitter.split(np.zeros(len(labels)), labels, groups)]
