"""The few scikit-learn computations the calibration report needs, written out in numpy.

Why not scikit-learn: importing ``sklearn.calibration``, ``isotonic``, ``linear_model``, ``metrics`` and
``model_selection`` costs about a second and ~140 MB of resident memory (SciPy's ``stats`` and its
friends come with it), and a run imports them last, when it holds the most answers — it was the peak of
the 100k-sample run (issue 20). What is used here is small: stratified folds, isotonic regression
(pool adjacent violators), a one-feature logistic regression, AUROC and the reliability curve.

Each function follows the scikit-learn algorithm it replaces (named in its docstring), and
``tests/test_calibration_fits.py`` checks them against the installed scikit-learn: folds identical,
isotonic predictions and AUROC to 1e-12, the reliability curve exactly. The logistic fit is solved by
Newton's method to convergence (the exact optimum of the same objective); scikit-learn's lbfgs stops at
its tolerance (1e-4), so the two differ by 1e-5 to 3e-4 in the predicted probabilities, and ours is
never worse on the objective (checked).
"""

from __future__ import annotations

import numpy as np


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The test fold of every sample, as ``StratifiedKFold(folds, shuffle=True, random_state=seed)``
    assigns them: each class's samples dealt to folds round-robin in sorted order, then that class's
    fold labels shuffled with ``RandomState(seed)`` (one stream, classes in order of first appearance)."""
    rng = np.random.RandomState(seed)
    _, first_index, inverse = np.unique(y, return_index=True, return_inverse=True)
    _, class_order = np.unique(first_index, return_inverse=True)
    encoded = class_order[inverse]
    n_classes = first_index.size
    ordered = np.sort(encoded)
    allocation = np.asarray([np.bincount(ordered[i::folds], minlength=n_classes) for i in range(folds)])
    test_folds = np.empty(y.size, dtype="i")
    for k in range(n_classes):
        for_class = np.arange(folds).repeat(allocation[:, k])
        rng.shuffle(for_class)
        test_folds[encoded == k] = for_class
    return test_folds


def _pool_adjacent_violators(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Increasing isotonic fit of ``y`` (weights ``w``), in place: pool adjacent violators in one pass
    with backtracking, as scikit-learn's ``_inplace_contiguous_isotonic_regression`` (with SciPy >= 1.12
    it calls ``scipy.optimize.isotonic_regression``, the same algorithm)."""
    n = y.size
    target = np.arange(n)
    i = 0
    while i < n:
        k = target[i] + 1
        if k == n:
            break
        if y[i] < y[k]:
            i = k
            continue
        sum_wy, sum_w = w[i] * y[i], w[i]
        while True:
            previous = y[k]
            sum_wy += w[k] * y[k]
            sum_w += w[k]
            k = target[k] + 1
            if k == n or previous < y[k]:
                y[i] = sum_wy / sum_w
                w[i] = sum_w
                target[i] = k - 1
                target[k - 1] = i
                if i > 0:
                    i = target[i - 1]
                break
    i = 0
    while i < n:
        k = target[i] + 1
        y[i + 1:k] = y[i]
        i = k
    return y


def _pooled_ties(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, weight, mean y) per group of equal x, as scikit-learn's ``_make_unique``: sorted x, a group
    starting at each x at least the float resolution (1e-15) above its group's first x."""
    values, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=y)
    eps = np.finfo(np.float64).resolution
    starts = [0]
    for index in range(1, values.size):
        if values[index] - values[starts[-1]] >= eps:
            starts.append(index)
    groups = np.asarray(starts)
    weights = np.add.reduceat(counts.astype(float), groups)
    return values[groups], weights, np.add.reduceat(sums, groups) / weights


def isotonic_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """``IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(x_train, y_train).predict(x_test)``:
    equal x pooled to their mean y, the increasing fit by pool adjacent violators clipped to [0, 1], then
    linear interpolation between the fitted points, x outside the training range clipped to it."""
    xs, weights, means = _pooled_ties(x_train, y_train)
    fitted = np.clip(_pool_adjacent_violators(means, weights), 0.0, 1.0)
    clipped = np.clip(x_test, xs[0], xs[-1])
    if xs.size == 1:
        return np.full(clipped.shape, fitted[0])
    return np.interp(clipped, xs, fitted)


def logistic_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, *, c: float = 1e6,
                     max_iter: int = 100) -> np.ndarray:
    """P(y = 1) of ``LogisticRegression(C=c).fit(x_train[:, None], y_train)`` at ``x_test``: the
    minimum of ``Σ log-loss + w²/(2c)`` (the intercept is not penalised) by Newton's method, each step
    halved until the objective falls."""
    design = np.column_stack([x_train, np.ones_like(x_train)])
    penalty = np.array([1.0 / c, 0.0])

    def objective(beta: np.ndarray) -> float:
        z = design @ beta
        return float(np.sum(np.logaddexp(0.0, z) - y_train * z) + 0.5 * penalty[0] * beta[0] ** 2)

    beta = np.zeros(2)
    value = objective(beta)
    for _ in range(max_iter):
        prob = 0.5 * (1.0 + np.tanh(0.5 * (design @ beta)))  # the logistic function, without overflow
        gradient = design.T @ (prob - y_train) + penalty * beta
        hessian = (design * (prob * (1.0 - prob))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hessian + 1e-12 * np.eye(2), gradient)
        scale = 1.0
        while scale > 1e-10:
            candidate = beta - scale * step
            new_value = objective(candidate)
            if new_value <= value:
                break
            scale /= 2
        else:
            break
        converged = float(np.max(np.abs(candidate - beta))) < 1e-12 * (1.0 + float(np.max(np.abs(beta))))
        beta, value = candidate, new_value
        if converged:
            break
    z = beta[0] * x_test + beta[1]
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=float)


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """``roc_auc_score(y, score)`` for 0/1 ``y`` with both classes present: the area under the ROC curve,
    which is the Mann-Whitney statistic — the chance a random positive scores above a random negative,
    ties counting one half — computed from average ranks."""
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]  # 1-based average rank of each sample
    positives = float(np.sum(y == 1))
    negatives = float(y.size) - positives
    return float((np.sum(ranks[y == 1]) - positives * (positives + 1) / 2.0) / (positives * negatives))


def reliability_curve(y: np.ndarray, p: np.ndarray, bin_ids: np.ndarray, n_bins: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``calibration_curve``'s (fraction of positives, mean confidence) per non-empty bin, for the bin of
    each sample as it assigns them."""
    total = np.bincount(bin_ids, minlength=n_bins)
    true = np.bincount(bin_ids, weights=y, minlength=n_bins)
    sums = np.bincount(bin_ids, weights=p, minlength=n_bins)
    nonzero = total != 0
    return true[nonzero] / total[nonzero], sums[nonzero] / total[nonzero]
