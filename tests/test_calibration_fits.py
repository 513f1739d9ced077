"""evalkit.routing.fits against the scikit-learn it replaces in the run path (the installed version):
the same folds, the same isotonic fit and AUROC, the same reliability curve, and the logistic optimum."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from evalkit.routing import fits
from evalkit.routing.calibration import _bin_ids, brier, recalibrate_cv

#: Verbalised confidence comes on a few levels (ties everywhere); the last cases are continuous and
#: near-separable, where an unpenalised logistic fit runs far out.
CASES = [(n, seed, kind) for n in (12, 57, 400, 2_000) for seed in (0, 1, 7)
         for kind in ("levels", "continuous")]


def _data(n: int, seed: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "levels":
        p = rng.choice([0.5, 0.7, 0.8, 0.9, 0.95, 0.99], size=n)
    else:
        p = rng.uniform(0, 1, size=n)
    y = (rng.uniform(size=n) < p).astype(float)
    y[:3], y[3:6] = 1.0, 0.0  # both classes, at least three of each
    return y, p


@pytest.mark.parametrize(("n", "seed", "kind"), CASES)
def test_folds_are_stratified_kfolds(n: int, seed: int, kind: str) -> None:
    y, _ = _data(n, seed, kind)
    folds = 3
    ours = fits.stratified_folds(y.astype(int), folds, seed)
    for fold, (_, test) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(y, y)):
        assert np.array_equal(np.flatnonzero(ours == fold), test)


@pytest.mark.parametrize(("n", "seed", "kind"), CASES)
def test_isotonic_predictions_are_sklearns(n: int, seed: int, kind: str) -> None:
    y, p = _data(n, seed, kind)
    train, test = slice(0, n * 2 // 3), slice(n * 2 // 3, None)
    probe = np.concatenate([p[test], [-0.5, 0.0, 1.0, 1.5, p[0] + 1e-16]])  # outside the range: clipped
    fitted = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p[train], y[train])
    expected = fitted.predict(probe)
    assert np.allclose(fits.isotonic_predict(p[train], y[train], probe), expected, rtol=0, atol=1e-12)


def test_isotonic_fit_of_one_distinct_value_is_its_mean() -> None:
    x, y = np.full(6, 0.9), np.array([1, 1, 0, 1, 0, 1.0])
    expected = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(x, y).predict([0.2, 0.9, 1.0])
    assert np.array_equal(fits.isotonic_predict(x, y, np.array([0.2, 0.9, 1.0])), expected)


@pytest.mark.parametrize(("n", "seed", "kind"), CASES)
def test_logistic_fit_is_the_optimum_sklearn_approaches(n: int, seed: int, kind: str) -> None:
    y, p = _data(n, seed, kind)
    x = np.log(np.clip(p, 1e-4, 1 - 1e-4) / (1 - np.clip(p, 1e-4, 1 - 1e-4)))
    theirs = LogisticRegression(C=1e6).fit(x[:, None], y)
    ours = fits.logistic_predict(x, y, x)
    assert np.allclose(ours, theirs.predict_proba(x[:, None])[:, 1], rtol=0, atol=2e-4)

    def loss(prob: np.ndarray) -> float:
        return float(-np.sum(y * np.log(prob) + (1 - y) * np.log1p(-prob)))

    # Never worse than scikit-learn's stopping point on the objective both minimise.
    assert loss(ours) <= loss(theirs.predict_proba(x[:, None])[:, 1]) + 1e-9


@pytest.mark.parametrize(("n", "seed", "kind"), CASES)
def test_auroc_brier_and_reliability_curve_are_sklearns(n: int, seed: int, kind: str) -> None:
    y, p = _data(n, seed, kind)
    assert fits.roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert brier(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-15)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
    ours_true, ours_pred = fits.reliability_curve(y, p, _bin_ids(p, 10, "uniform"), 10)
    assert np.array_equal(ours_true, prob_true) and np.array_equal(ours_pred, prob_pred)


@pytest.mark.parametrize("method", ["isotonic", "platt"])
@pytest.mark.parametrize(("n", "seed", "kind"), [case for case in CASES if case[0] >= 57])
def test_cross_validated_recalibration_is_cross_val_predict(method: str, n: int, seed: int,
                                                             kind: str) -> None:
    y, p = _data(n, seed, kind)
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    if method == "isotonic":
        expected = cross_val_predict(IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip"),
                                     p.reshape(-1, 1), y.astype(int), cv=cv)
        tolerance = 1e-12
    else:
        x = np.log(np.clip(p, 1e-4, 1 - 1e-4) / (1 - np.clip(p, 1e-4, 1 - 1e-4))).reshape(-1, 1)
        expected = cross_val_predict(LogisticRegression(C=1e6), x, y.astype(int), cv=cv,
                                     method="predict_proba")[:, 1]
        tolerance = 1e-3  # lbfgs stops at tol 1e-4; ours is the optimum (test_logistic_fit_is_the_optimum…)
    ours = recalibrate_cv(y, p, method, folds=5, seed=seed)  # type: ignore[arg-type]
    assert np.allclose(ours, expected, rtol=0, atol=tolerance)


def test_a_calibration_report_imports_no_scikit_learn(tmp_path: object) -> None:
    # Issue 20: importing scikit-learn at the end of a 100k run was its memory peak (~140 MB more).
    code = ("import json, sys, numpy as np\n"
            "from evalkit.routing.calibration import calibration_report\n"
            "rng = np.random.default_rng(3); p = rng.choice([0.6, 0.8, 0.9, 0.95], 500)\n"
            "y = (rng.uniform(size=500) < p).astype(float)\n"
            "report = calibration_report(y, p)\n"
            "print(json.dumps({'sklearn': 'sklearn' in sys.modules, 'iso': report['isotonic_cv'] is not None,"
            " 'platt': report['platt_cv'] is not None}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"sklearn": False, "iso": True, "platt": True}

