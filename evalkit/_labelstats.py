"""The three label metrics a run reports, computed as scikit-learn computes them, without scikit-learn.

``confusion_matrix``, ``cohen_kappa_score`` and macro ``f1_score`` are small integer counts and a few
numpy reductions; importing ``sklearn.metrics`` to get them costs about a second (it brings SciPy's
``stats``, pandas and pyarrow). These functions repeat sklearn 1.9's operations in the same order
(float64 sums, ``np.outer``, ``np.nanmean``), so the results are the same bits:
``tests/test_label_metrics.py`` checks them against sklearn over thousands of random label lists.
Only the arguments evalkit passes are supported (``labels`` given; no sample weights).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["cohen_kappa_score", "confusion_matrix", "f1_score"]


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str], *, labels: Sequence[str]) -> np.ndarray:
    """Counts ``C[i, j]`` of samples with truth ``labels[i]`` and prediction ``labels[j]``; samples with
    either label outside ``labels`` are left out (as sklearn does)."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true and y_pred differ in length ({len(y_true)} vs {len(y_pred)})")
    index = {label: i for i, label in enumerate(labels)}
    if len(index) != len(labels):
        raise ValueError("labels must be unique")
    if not any(label in index for label in y_true):
        raise ValueError("At least one label specified must be in y_true")
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for truth, predicted in zip(y_true, y_pred, strict=True):
        i, j = index.get(truth), index.get(predicted)
        if i is not None and j is not None:
            matrix[i, j] += 1
    return matrix


def cohen_kappa_score(y1: Sequence[str], y2: Sequence[str], *, labels: Sequence[str],
                      replace_undefined_by: float = np.nan) -> float:
    """Cohen's kappa, unweighted: ``1 − Σ w·C / Σ w·E`` with ``E`` the outer product of the margins."""
    confusion = confusion_matrix(y1, y2, labels=labels).astype(np.float64)
    n_classes = confusion.shape[0]
    sum0 = np.sum(confusion, axis=0)
    sum1 = np.sum(confusion, axis=1)
    numerator = np.outer(sum0, sum1)
    denominator = np.sum(sum0)
    if denominator == 0:
        return replace_undefined_by
    expected = numerator / denominator
    w_mat = np.ones([n_classes, n_classes], dtype=np.float64)
    np.fill_diagonal(w_mat, 0)
    weighted = np.sum(w_mat * confusion)
    weighted_expected = np.sum(w_mat * expected)
    if weighted_expected == 0:
        return replace_undefined_by
    return float(1 - weighted / weighted_expected)


def _divide(numerator: np.ndarray, denominator: np.ndarray, zero_division: float) -> np.ndarray:
    mask = denominator == 0
    safe = np.asarray(denominator, dtype=np.float64).copy()
    safe[mask] = 1
    result = np.asarray(numerator, dtype=np.float64) / safe
    result[mask] = zero_division
    return result


def f1_score(y_true: Sequence[str], y_pred: Sequence[str], *, labels: Sequence[str], average: str = "macro",
             zero_division: float = 0) -> float:
    """Macro F1 over ``labels`` (a label never predicted nor true scores ``zero_division``)."""
    if average != "macro":
        raise ValueError("only average='macro' is supported")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true and y_pred differ in length ({len(y_true)} vs {len(y_pred)})")
    index = {label: i for i, label in enumerate(labels)}
    size = len(labels)
    tp_sum = np.zeros(size, dtype=np.int64)
    pred_sum = np.zeros(size, dtype=np.int64)
    true_sum = np.zeros(size, dtype=np.int64)
    for truth, predicted in zip(y_true, y_pred, strict=True):
        i, j = index.get(truth), index.get(predicted)
        if i is not None:
            true_sum[i] += 1
        if j is not None:
            pred_sum[j] += 1
        if i is not None and i == j:
            tp_sum[i] += 1
    denominator = 1.0 * true_sum.astype(np.float64) + pred_sum.astype(np.float64)
    f_score = _divide((1 + 1.0) * tp_sum.astype(np.float64), denominator, zero_division)
    if f_score.shape[0] == 0 or np.all(np.isnan(f_score)):
        return float("nan")
    return float(np.nanmean(f_score))
