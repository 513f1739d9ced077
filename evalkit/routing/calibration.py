"""Calibration of the candidate's self-reported confidence against its correctness (stats-spec §5).

``y_i ∈ {0, 1}`` is correctness: ``cand_i`` with gold labels (mode b) or ``agree_i`` without (mode a).
``p_i ∈ [0, 1]`` is the candidate's stated confidence. Verbalized confidence comes in a few levels
(0.8, 0.9, 0.95, …), so the report shows ECE by level next to equal-width ECE (for comparability) and
equal-mass ECE (whose edges repeat under ties). ECE is biased upward at n = 200–500; AUROC
(discrimination) is what matters for routing.

Recalibration (isotonic, Platt) is always cross-validated, and only worth adopting when its out-of-fold
Brier score beats the raw one. It is a monotone map, so it cannot change which routing splits are
achievable: use it for display, not for choosing the routing threshold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from evalkit._lazy import lazy
from evalkit.routing import fits
from evalkit.routing.memo import remembered

_special = lazy("scipy.special")

__all__ = [
    "auroc",
    "brier",
    "calibration_report",
    "ece",
    "ece_by_level",
    "recalibrate_cv",
    "reliability_diagram",
]

Strategy = Literal["uniform", "quantile"]
Recalibrator = Literal["isotonic", "platt"]

MAX_LEVELS = 20  # above this many distinct confidences, "ECE by level" stops being meaningful
_PLATT_CLIP = 1e-4


def _check(y: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert: y binary, p finite in [0, 1], same non-zero length."""
    y_arr = np.asarray(y, dtype=float).ravel()
    p_arr = np.asarray(p, dtype=float).ravel()
    if y_arr.size == 0 or y_arr.size != p_arr.size:
        raise ValueError(f"y and p must be non-empty and of equal length ({y_arr.size} vs {p_arr.size})")
    if not np.all((y_arr == 0) | (y_arr == 1)):
        raise ValueError("y must contain only 0/1 (correctness)")
    if not np.all(np.isfinite(p_arr)) or p_arr.min() < 0 or p_arr.max() > 1:
        raise ValueError("p must be finite confidences in [0, 1] (drop samples without a confidence)")
    return y_arr, p_arr


def _bin_ids(p: np.ndarray, n_bins: int, strategy: Strategy) -> np.ndarray:
    """Bin index per sample, exactly as sklearn.calibration.calibration_curve bins (right-closed)."""
    if n_bins < 1:
        raise ValueError("n_bins must be positive")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.percentile(p, np.linspace(0.0, 100.0, n_bins + 1))
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    return np.searchsorted(edges[1:-1], p)


def ece(y: ArrayLike, p: ArrayLike, n_bins: int = 10, strategy: Strategy = "uniform") -> float:
    """Expected calibration error ``Σ_b (n_b/n)·|mean(y in b) − mean(p in b)|``.

    Binning matches ``calibration_curve(y, p, n_bins, strategy)`` so the numbers agree with sklearn's
    reliability diagram; sklearn returns no counts, hence the bincount on the same bin ids.
    """
    y_arr, p_arr = _check(y, p)
    ids = _bin_ids(p_arr, n_bins, strategy)
    total = np.bincount(ids, minlength=n_bins)
    sum_p = np.bincount(ids, weights=p_arr, minlength=n_bins)
    sum_y = np.bincount(ids, weights=y_arr, minlength=n_bins)
    nz = total > 0
    return float(np.sum(np.abs(sum_y[nz] - sum_p[nz])) / y_arr.size)


def ece_by_level(y: ArrayLike, p: ArrayLike) -> float:
    """ECE with one bin per distinct confidence (rounded to 2 decimals): the natural bins for
    verbalized confidence, which is reported on a handful of levels."""
    y_arr, p_arr = _check(y, p)
    levels, inv = np.unique(np.round(p_arr, 2), return_inverse=True)
    total = np.bincount(inv)
    sum_y = np.bincount(inv, weights=y_arr)
    return float(np.sum(np.abs(sum_y - total * levels)) / y_arr.size)


def brier(y: ArrayLike, p: ArrayLike) -> float:
    """Brier score ``mean((p − y)²)``."""
    y_arr, p_arr = _check(y, p)
    return float(np.mean((y_arr - p_arr) ** 2))


def auroc(y: ArrayLike, p: ArrayLike) -> float | None:
    """AUROC of confidence for correctness (discrimination; what routing relies on).

    None when y has a single class, where AUROC is undefined.
    """
    y_arr, p_arr = _check(y, p)
    if np.unique(y_arr).size < 2:
        return None
    return fits.roc_auc(y_arr, p_arr)


def reliability_diagram(y: ArrayLike, p: ArrayLike, n_bins: int = 10) -> dict[str, list[float] | list[int]]:
    """Equal-width reliability diagram: per non-empty bin, mean confidence, accuracy and count."""
    y_arr, p_arr = _check(y, p)
    ids = _bin_ids(p_arr, n_bins, "uniform")
    prob_true, prob_pred = fits.reliability_curve(y_arr, p_arr, ids, n_bins)
    counts = np.bincount(ids, minlength=n_bins)
    counts = counts[counts > 0]
    return {
        "prob_pred": [float(v) for v in prob_pred],
        "prob_true": [float(v) for v in prob_true],
        "counts": [int(v) for v in counts],
    }


def recalibrate_cv(
    y: ArrayLike, p: ArrayLike, method: Recalibrator = "isotonic", folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Out-of-fold recalibrated confidences (each sample mapped by a model fitted without it).

    In-sample recalibration would look perfect by construction; cross-validation gives honest numbers.
    Isotonic: monotone step map clipped to [0, 1]. Platt: logistic regression on logit(p) (essentially
    unpenalised, C=1e6). Folds are stratified so every fold sees both classes; that requires at least
    ``folds`` samples of each class.
    """
    y_arr, p_arr = _check(y, p)
    _, counts = np.unique(y_arr, return_counts=True)
    if counts.size < 2 or counts.min() < folds:
        raise ValueError(f"recalibration needs at least {folds} correct and {folds} incorrect samples")
    if method not in ("isotonic", "platt"):
        raise ValueError(f"method must be 'isotonic' or 'platt', got {method!r}")
    x = p_arr if method == "isotonic" else _special.logit(np.clip(p_arr, _PLATT_CLIP, 1 - _PLATT_CLIP))
    fit = fits.isotonic_predict if method == "isotonic" else fits.logistic_predict
    test_folds = fits.stratified_folds(y_arr.astype(int), folds, seed)
    predicted = np.empty(y_arr.size)
    for fold in range(folds):  # cross_val_predict: each fold predicted by a fit on the others
        test = test_folds == fold
        predicted[test] = fit(x[~test], y_arr[~test], x[test])
    return predicted


def _summary(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    return {
        "ece_uniform10": ece(y, p, 10, "uniform"),
        "ece_quantile10": ece(y, p, 10, "quantile"),
        "brier": brier(y, p),
        "auroc": auroc(y, p),
    }


def calibration_report(y: ArrayLike, p: ArrayLike, *, folds: int = 5, seed: int = 0,
                       memo_dir: Path | None = None) -> dict[str, Any]:
    """Everything §5 asks to report, as plain JSON-ready values.

    With ``memo_dir`` the report is remembered there (:mod:`evalkit.routing.memo`), keyed by y, p, the
    folds, the seed and the library versions: the same inputs again give the same report without
    computing them again.

    Samples whose confidence is missing (NaN, e.g. an invalid candidate answer) are left out of every
    calibration number and counted in ``n_missing_confidence``. Cross-validated recalibration results are
    None when there are too few samples of either class; ``recalibration_helps`` names the recalibrator
    with the lowest out-of-fold Brier score if it beats the raw Brier score, else None.
    """
    y_all = np.asarray(y, dtype=float).ravel()
    p_all = np.asarray(p, dtype=float).ravel()
    if y_all.size != p_all.size:
        raise ValueError(f"y and p must have equal length ({y_all.size} vs {p_all.size})")
    return remembered(memo_dir, "calibration-report", (__name__, fits.__name__),
                      {"y": y_all, "p": p_all, "folds": folds, "seed": seed},
                      lambda: _report(y_all, p_all, folds=folds, seed=seed))


def _report(y_all: np.ndarray, p_all: np.ndarray, *, folds: int, seed: int) -> dict[str, Any]:
    keep = ~np.isnan(p_all)
    y_arr, p_arr = _check(y_all[keep], p_all[keep])
    n_levels = int(np.unique(np.round(p_arr, 2)).size)
    raw = _summary(y_arr, p_arr)
    recal: dict[str, dict[str, float | None] | None] = {}
    for method in ("isotonic", "platt"):
        try:
            recal[method] = _summary(y_arr, recalibrate_cv(y_arr, p_arr, method, folds=folds, seed=seed))
        except ValueError:
            recal[method] = None
    best: str | None = None
    best_brier = brier(y_arr, p_arr)
    for method, res in recal.items():
        if res is not None and res["brier"] is not None and res["brier"] < best_brier:
            best, best_brier = method, res["brier"]
    return {
        "n": int(y_arr.size),
        "n_missing_confidence": int((~keep).sum()),
        "accuracy": float(y_arr.mean()),
        "mean_confidence": float(p_arr.mean()),
        "n_levels": n_levels,
        "ece_uniform10": raw["ece_uniform10"],
        "ece_quantile10": raw["ece_quantile10"],
        "ece_by_level": ece_by_level(y_arr, p_arr) if n_levels <= MAX_LEVELS else None,
        "brier": raw["brier"],
        "auroc": raw["auroc"],
        "reliability": reliability_diagram(y_arr, p_arr),
        "isotonic_cv": recal["isotonic"],
        "platt_cv": recal["platt"],
        "recalibration_helps": best,
    }
