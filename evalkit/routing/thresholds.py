"""Routing threshold math: escalate a request to the reference iff the candidate's confidence < t
(stats-spec §6).

The deployment is a cascade: the candidate always runs, and escalated requests also run on the reference,
so cost per request is ``c_cand + e(t)·c_ref``. The quality loss of not escalating sample i is
``h_i(t) = 1[conf_i ≥ t]·1[ref right & cand wrong]``; its mean ``R(t)`` bounds the accuracy lost against
always-reference, and it is non-increasing in t. Thresholds come from a grid fixed in advance (LTT's
hypotheses must not depend on the data); t = 1.01 escalates everything.

Inputs (all per sample, equal length):

* ``conf``: the candidate's confidence in [0, 1]. Invalid candidate answers must be passed as NaN, None
  or -inf; they are treated as conf = -1, i.e. escalated at every threshold.
* ``cand_correct`` / ``ref_correct``: 0/1 correctness. In mode (b) (gold labels) these are the two models'
  correctness. In mode (a) (no gold) pass ``ref_correct`` = all ones and ``cand_correct`` = agreement with
  the reference: "routed accuracy" is then agreement with always-reference, and harm is
  ``1[conf ≥ t]·(1 − agree)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from evalkit.stats.dist import binom_cdf

__all__ = [
    "GRID",
    "cross_fit",
    "kfold_split",
    "pareto_front",
    "pick_budget",
    "pick_crc",
    "pick_ltt",
    "pick_naive",
    "pick_target_escalation",
    "prepare_confidence",
    "sweep",
]

GRID: np.ndarray = np.round(np.arange(0, 102) / 100, 2)  # 0.00 … 1.00, plus 1.01 = escalate everything

_MISSING_CONF = -1.0
_COST_EPS = 1e-12  # tolerance for cost ≤ budget comparisons (costs are sums of floats)

Row = dict[str, Any]
ConfLike = ArrayLike | Sequence[float | None]  # None / NaN / -inf = no usable confidence
Selector = Callable[[np.ndarray], "float | None"]


def prepare_confidence(conf: ConfLike) -> np.ndarray:
    """Confidences as floats rounded to 2 decimals, with missing/invalid ones (None, NaN, -inf) as -1.

    Rounding makes comparisons against the 2-decimal grid exact (0.85 < 0.86, never 0.8500000001).
    """
    arr = np.array(conf, dtype=float).ravel()  # copies; None becomes NaN
    arr[np.isnan(arr) | np.isneginf(arr)] = _MISSING_CONF
    finite = arr != _MISSING_CONF
    if np.any(~np.isfinite(arr)) or np.any((arr[finite] < 0) | (arr[finite] > 1)):
        raise ValueError("confidences must lie in [0, 1] (missing ones as None/NaN/-inf)")
    return np.round(arr, 2)


def _binary(name: str, values: ArrayLike, n: int) -> np.ndarray:
    arr = np.asarray(values).ravel().astype(float)
    if arr.size != n:
        raise ValueError(f"{name} has length {arr.size}, expected {n}")
    if not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{name} must contain only 0/1")
    return arr.astype(bool)


def _inputs(
    conf: ConfLike, cand_correct: ArrayLike, ref_correct: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = prepare_confidence(conf)
    if c.size == 0:
        raise ValueError("no samples")
    return c, _binary("cand_correct", cand_correct, c.size), _binary("ref_correct", ref_correct, c.size)


def sweep(
    conf: ConfLike,
    cand_correct: ArrayLike,
    ref_correct: ArrayLike,
    *,
    cost_candidate: float,
    cost_reference: float,
    grid: ArrayLike = GRID,
    alpha: float = 0.05,
) -> list[Row]:
    """One row per grid threshold t (ascending) with keys:

    ``t``, ``n``, ``escalation_rate`` e(t), ``routed_accuracy``, ``harm_count`` k(t), ``harm_rate``
    R̂(t) = k/n, ``cost`` = c_cand + e·c_ref, and ``ltt_p`` = Bin(n, α).cdf(k), the exact p-value for
    H_t: R(t) > α used by :func:`pick_ltt`.
    """
    c, cand, ref = _inputs(conf, cand_correct, ref_correct)
    ts = np.round(np.sort(np.asarray(grid, dtype=float).ravel()), 2)
    n = c.size
    # Counts per threshold from sorted confidences: sample i is escalated at t when c_i < t, so each count
    # is a search in the sorted confidences of the samples it counts — the same integers as the
    # thresholds × samples matrices this replaced (five 10 MB matrices at 100k samples).
    def below(mask: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.sort(c[mask]), ts, side="left")

    everyone = np.ones(n, dtype=bool)
    escalated = below(everyone)
    harmful = ref & ~cand
    k = int(harmful.sum()) - below(harmful)  # kept on the candidate (c_i >= t) and only it was wrong
    routed_right = below(ref) + (int(cand.sum()) - below(cand))
    esc_rate = escalated / n
    p = binom_cdf(k, n, alpha)
    return [
        {
            "t": float(ts[j]),
            "n": int(n),
            "escalation_rate": float(esc_rate[j]),
            "routed_accuracy": float(routed_right[j] / n),
            "harm_count": int(k[j]),
            "harm_rate": float(k[j] / n),
            "cost": float(cost_candidate + esc_rate[j] * cost_reference),
            "ltt_p": float(p[j]),
        }
        for j in range(ts.size)
    ]


def _ascending(rows: Sequence[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: r["t"])


def pick_naive(rows: Sequence[Row], alpha: float) -> float | None:
    """Smallest t with in-sample harm R̂(t) ≤ α. No guarantee: shown only for contrast (it exceeds α on
    about 17% of calibration sets in the spec's simulation)."""
    for row in _ascending(rows):
        if row["harm_rate"] <= alpha:
            return row["t"]
    return None


def pick_crc(rows: Sequence[Row], alpha: float, n: int | None = None, B: float = 1.0) -> float | None:
    """Conformal risk control: smallest t with ``(n·R̂(t) + B)/(n+1) ≤ α``; gives E[R(t̂)] ≤ α over
    calibration sets (on average only). ``B`` bounds the loss; ``n`` defaults to the rows' sample size.
    Needs n ≥ B/α − 1 before any t qualifies."""
    for row in _ascending(rows):
        m = row["n"] if n is None else n
        if (row["harm_count"] + B) / (m + 1) <= alpha:
            return row["t"]
    return None


def pick_ltt(rows: Sequence[Row], alpha: float, delta: float) -> float | None:
    """Learn-then-test with fixed-sequence testing: P(R(t̂) ≤ α) ≥ 1 − δ.

    Walks the grid from the most conservative t (top) down, rejecting H_t: R(t) > α while the binomial
    p-value Bin(n, α).cdf(k(t)) ≤ δ, and stops at the first failure. Returns the last rejected t (the
    cheapest certified one), or None if not even the top of the grid is certified.
    """
    t_hat: float | None = None
    for row in reversed(_ascending(rows)):
        if float(binom_cdf(row["harm_count"], row["n"], alpha)) > delta:
            break
        t_hat = row["t"]
    return t_hat


def pick_target_escalation(conf: ConfLike, target_rate: float, grid: ArrayLike = GRID) -> float | None:
    """Smallest grid t whose escalation rate is ≥ ``target_rate`` (cost-share targeting, RouteLLM-style).

    Ties: verbalized confidence sits on a few levels, so e(t) jumps in steps and the achieved rate can
    overshoot the target a lot (on the spec's sample a 30% target gives t = 0.86 with 41.75%). A quantile
    of conf would undershoot instead (0.85 → 28.5%). This controls cost only, never quality.
    """
    c = prepare_confidence(conf)
    if c.size == 0:
        raise ValueError("no samples")
    for t in np.round(np.sort(np.asarray(grid, dtype=float).ravel()), 2):
        if float(np.mean(c < t)) >= target_rate:
            return float(t)
    return None


def pick_budget(rows: Sequence[Row], budget_cost: float) -> float | None:
    """Highest routed accuracy with cost ≤ budget (FrugalGPT-style); ties go to the lower cost, then the
    lower t. Purely empirical: no harm guarantee (on the spec's sample budget 2.0 gives harm 0.0625)."""
    ok = [r for r in rows if r["cost"] <= budget_cost + _COST_EPS]
    if not ok:
        return None
    return min(ok, key=lambda r: (-r["routed_accuracy"], r["cost"], r["t"]))["t"]


def cross_fit(
    conf: ConfLike,
    cand_correct: ArrayLike,
    ref_correct: ArrayLike,
    select: Selector,
    *,
    folds: int = 5,
    seed: int = 0,
    cost_candidate: float,
    cost_reference: float,
) -> dict[str, Any]:
    """Honest (held-out) numbers for a threshold-selection rule (§6.4).

    For each KFold(folds, shuffle=True, random_state=seed) split, ``select(train_indices)`` picks t on
    the training part (same rule as deployment) and the test part is routed with it. A fold where the rule
    certifies no threshold (None) escalates everything, the only safe fallback. The in-sample sweep at the
    chosen t is optimistic; report these numbers instead, and deploy ``select(all indices)``.
    """
    c, cand, ref = _inputs(conf, cand_correct, ref_correct)
    esc = np.zeros(c.size, dtype=bool)
    thresholds: list[float | None] = []
    for train, test in kfold_split(c.size, folds, seed):
        t = select(train)
        thresholds.append(None if t is None else float(t))
        esc[test] = True if t is None else c[test] < t
    routed = np.where(esc, ref, cand)
    harm = ~esc & ref & ~cand
    chosen = [t for t in thresholds if t is not None]
    return {
        "n": int(c.size),
        "fold_thresholds": thresholds,
        "threshold_min": min(chosen) if chosen else None,
        "threshold_max": max(chosen) if chosen else None,
        "folds_without_threshold": len(thresholds) - len(chosen),
        "escalation_rate": float(esc.mean()),
        "routed_accuracy": float(routed.mean()),
        "harm_rate": float(harm.mean()),
        "cost": float(cost_candidate + esc.mean() * cost_reference),
    }


def kfold_split(n: int, folds: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``sklearn.model_selection.KFold(folds, shuffle=True, random_state=seed).split`` on ``n`` samples.

    The same folds, index for index (``tests/test_routing_memo.py`` compares them with sklearn's):
    ``RandomState(seed)`` shuffles ``arange(n)``, the first ``n % folds`` folds get one extra sample,
    and both index arrays come back sorted. Written out so routing needs no scikit-learn import.
    """
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    if folds > n:
        raise ValueError(f"cannot split {n} samples into {folds} folds")
    indices = np.arange(n)
    np.random.RandomState(seed).shuffle(indices)
    sizes = np.full(folds, n // folds, dtype=int)
    sizes[: n % folds] += 1
    every = np.arange(n)
    start = 0
    for size in sizes:
        mask = np.zeros(n, dtype=bool)
        mask[indices[start:start + size]] = True
        yield every[~mask], every[mask]
        start += size


def pareto_front(rows: Sequence[Row]) -> list[Row]:
    """Rows not dominated in (lower cost, higher routed accuracy), by increasing cost.

    Thresholds between two confidence levels give identical rows; only the lowest such t is kept.
    """
    front: list[Row] = []
    best_acc = -np.inf
    for row in sorted(rows, key=lambda r: (r["cost"], -r["routed_accuracy"], r["t"])):
        if row["routed_accuracy"] > best_acc:
            front.append(row)
            best_acc = row["routed_accuracy"]
    return front
