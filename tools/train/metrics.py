"""Binary classification metrics (positive class = PNEUMONIA, label index 1).

Pure numpy; shared by train.py and eval.py so both report the same figures.
"""

from __future__ import annotations

import numpy as np


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney U statistic with average ranks for ties."""
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=np.float64)
    s = score[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def binary_metrics(y: np.ndarray, p_pos: np.ndarray, threshold: float) -> dict:
    """Metrics at `threshold` (predict PNEUMONIA when p_pos >= threshold).

    Returns n, accuracy, sensitivity (recall of PNEUMONIA), specificity,
    precision (PPV), f1, balanced_accuracy, roc_auc and the confusion matrix
    {tp, fn, fp, tn}.
    """
    y = np.asarray(y).astype(bool)
    pred = np.asarray(p_pos) >= threshold
    tp = int((pred & y).sum())
    fn = int((~pred & y).sum())
    fp = int((pred & ~y).sum())
    tn = int((~pred & ~y).sum())
    n = tp + fn + fp + tn

    def div(a, b):
        return float(a) / b if b else float("nan")

    sens = div(tp, tp + fn)
    spec = div(tn, tn + fp)
    prec = div(tp, tp + fp)
    f1 = div(2 * tp, 2 * tp + fp + fn)
    return {
        "n": n,
        "threshold": float(threshold),
        "accuracy": div(tp + tn, n),
        "sensitivity": sens,
        "specificity": spec,
        "precision": prec,
        "f1": f1,
        "balanced_accuracy": (sens + spec) / 2.0,
        "roc_auc": roc_auc(y, p_pos),
        "confusion": {"tp": tp, "fn": fn, "fp": fp, "tn": tn},
    }


def choose_threshold_youden(y: np.ndarray, p_pos: np.ndarray, step: float = 0.005) -> float:
    """Threshold maximising Youden's J = sensitivity + specificity - 1.

    Candidates are the grid step, 2*step, ..., 1-step. When several
    candidates tie at the maximum, the median of the tied candidates is taken
    (the middle of the plateau), which keeps the threshold away from the
    edge of the separating gap.
    """
    y = np.asarray(y).astype(bool)
    p = np.asarray(p_pos, dtype=np.float64)
    grid = np.round(np.arange(step, 1.0, step), 6)
    js = []
    for t in grid:
        pred = p >= t
        sens = (pred & y).sum() / max(y.sum(), 1)
        spec = (~pred & ~y).sum() / max((~y).sum(), 1)
        js.append(sens + spec - 1.0)
    js = np.asarray(js)
    best = np.flatnonzero(js >= js.max() - 1e-12)
    return float(grid[best[len(best) // 2]])
