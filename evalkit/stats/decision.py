"""Statistics for the go/no-go decision (docs/reference/stats-spec.md §1–3).

The question is non-inferiority: is the candidate's quality loss Δ at most the margin δ? Two modes:

* **reference** (no gold labels): Δ = 1 − agreement with the reference. Decided with the exact binomial
  test (GO iff the Clopper–Pearson one-sided 95% lower bound on agreement is ≥ 1 − δ).
* **gold** (gold labels): Δ = reference accuracy − candidate accuracy on the same samples (paired).
  Decided with Tango's score statistic T(δ) on the discordant cells (GO iff T ≤ −z, NO-GO iff T ≥ z),
  which keeps the rate of a wrong GO at about α where Wald and Newcombe exceed it.

Both give GO / NO-GO / INCONCLUSIVE, never a coin flip at the margin. The plain point-estimate rule
(Δ̂ ≤ δ) is computed beside it for contrast, McNemar's test is shown as a diagnostic (it tests "any
difference", not non-inferiority), and an INCONCLUSIVE result says how many samples would decide it.
No library has Tango's interval or the paired power calculation, so they are implemented here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from evalkit._lazy import lazy
from evalkit._typed import Typed
from evalkit.scoring.samples import ScoredSample, scoring_mode
from evalkit.stats.dist import (
    beta_isf,
    beta_ppf,
    binom_cdf,
    binom_pmf,
    binom_sf,
    binomtest_pvalue,
    norm_ppf,
    norm_sf,
)
from evalkit.stats.roots import brentq

_special = lazy("scipy.special")

Verdict = Literal["GO", "NO-GO", "INCONCLUSIVE", "INSUFFICIENT-DATA", "INVALID-RUN"]


# -- intervals -----------------------------------------------------------------------------------
def wilson_interval(successes: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """statsmodels' ``proportion_confint(method="wilson")``, written out with ``scipy.special.ndtri``.

    Why not statsmodels: it imports SciPy's ``stats`` and pandas (about a second), and the report needs
    this interval for every rate it shows. The same numpy operations in the same order as statsmodels
    0.15 (``norm.isf(α/2)`` is ``-ndtri(α/2)``), so the bits are the same; tests/test_stats.py checks it
    against statsmodels over a grid of counts and levels.
    """
    count_a, nobs_a = np.asarray(successes), np.asarray(n)
    q_ = count_a / nobs_a
    alpha = (1 - confidence) / 2.0
    crit = -_special.ndtri(alpha)
    crit2 = crit**2
    denom = 1 + crit2 / nobs_a
    center = (q_ + crit2 / (2 * nobs_a)) / denom
    dist = crit * np.sqrt(q_ * (1.0 - q_) / nobs_a + crit2 / (4.0 * nobs_a**2))
    dist /= denom
    return float(np.clip(center - dist, 0, 1)), float(np.clip(center + dist, 0, 1))


def clopper_pearson_interval(successes: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """statsmodels' ``proportion_confint(method="beta")``: the same two SciPy calls with the same arguments.

    Why not statsmodels: importing it costs pandas and its own modules (0.4 s) for these two lines;
    tests/test_stats.py checks the result bit for bit against statsmodels.
    """
    count_a, nobs_a = np.asarray(successes), np.asarray(n)
    alpha = (1 - confidence) / 2.0
    low = beta_ppf(alpha, count_a, nobs_a - count_a + 1)
    high = beta_isf(alpha, count_a + 1, nobs_a - count_a)
    return float(0.0 if successes == 0 else low), float(1.0 if successes == n else high)


def newcombe_paired_interval(a: int, b: int, c: int, d: int, *,
                             confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe (1998) method 10 for p1 − p2, p1 = (a+b)/n, p2 = (a+c)/n. A closed-form cross-check."""
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, confidence=confidence)
    l2, u2 = wilson_interval(a + c, n, confidence=confidence)
    product = (a + b) * (c + d) * (a + c) * (b + d)
    if product == 0:
        phi = 0.0
    else:
        cross = a * d - b * c
        phi = ((cross - n / 2) if cross > n / 2 else (0.0 if cross >= 0 else cross)) / math.sqrt(product)
    estimate = p1 - p2
    low = estimate - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = estimate + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, low), min(1.0, high)


def tango_statistic(b: ArrayLike, c: ArrayLike, n: float, delta0: float) -> Any:
    """Tango (1998) score statistic for H0: Δ = δ0, Δ = (b − c)/n. Vectorised in b and c."""
    b = np.asarray(b, float)
    c = np.asarray(c, float)
    big_a = 2 * n
    big_b = -b - c + (2 * n - b + c) * delta0
    big_c = -c * delta0 * (1 - delta0)
    q = (np.sqrt(big_b * big_b - 4 * big_a * big_c) - big_b) / (2 * big_a)  # restricted MLE of P(cell c)
    numerator = b - c - n * delta0
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(numerator == 0, 0.0, numerator / np.sqrt(n * (2 * q + delta0 * (1 - delta0))))
    return float(value) if value.ndim == 0 else value


def tango_interval(b: int, c: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """{Δ0 : |T(Δ0)| ≤ z}, ends found with brentq."""
    z = norm_ppf(1 - (1 - confidence) / 2)
    estimate = (b - c) / n
    eps = 1e-10
    low = -1.0 if estimate <= -1 else brentq(
        lambda t: tango_statistic(b, c, n, t) - z, -1 + eps, estimate, xtol=1e-12)
    high = 1.0 if estimate >= 1 else brentq(
        lambda t: tango_statistic(b, c, n, t) + z, estimate, 1 - eps, xtol=1e-12)
    return float(low), float(high)


def mcnemar_diagnostic(a: int, b: int, c: int, d: int) -> dict[str, float]:
    """McNemar's test of "any difference" (not non-inferiority): exact and mid-p."""
    # statsmodels' mcnemar(exact=True) on the float table, written out (the same SciPy call; checked
    # bit for bit in tests/test_stats.py): importing statsmodels costs 0.4 s.
    statistic = np.minimum(np.float64(b), np.float64(c))
    exact = float(np.minimum(binom_cdf(statistic, int(b + c), 0.5) * 2, 1))
    m, k = b + c, min(b, c)
    mid = 1.0 if m == 0 else min(1.0, 2 * (binom_cdf(k, m, 0.5) - 0.5 * binom_pmf(k, m, 0.5)))
    return {"exact_p": exact, "mid_p": float(mid)}


# -- the three-way tests -------------------------------------------------------------------------
def decide_paired(b: int, c: int, n: int, *, margin: float, alpha: float = 0.05) -> tuple[Verdict, float]:
    """Gold mode: (verdict, T(δ)). GO iff T ≤ −z, NO-GO iff T ≥ z."""
    t = tango_statistic(b, c, n, margin)
    z = norm_ppf(1 - alpha)
    return ("GO" if t <= -z else "NO-GO" if t >= z else "INCONCLUSIVE"), t


def decide_single(x: int, n: int, *, margin: float, alpha: float = 0.05) -> tuple[Verdict, float, float]:
    """Reference mode: (verdict, p_GO, p_NO-GO) from exact binomial tests of agreement against 1 − δ."""
    p_go = binomtest_pvalue(x, n, 1 - margin, "greater")
    p_nogo = binomtest_pvalue(x, n, 1 - margin, "less")
    verdict: Verdict = "GO" if p_go <= alpha else "NO-GO" if p_nogo <= alpha else "INCONCLUSIVE"
    return verdict, float(p_go), float(p_nogo)


# -- sample sizes ----------------------------------------------------------------------------------
def _bisect_n(decided: Callable[[int], bool], start: int, limit: int = 10**6) -> int | None:
    low, high = 1, max(start, 1)
    while not decided(high):
        low, high = high, high * 2
        if high > limit:
            return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if decided(middle) else (middle, high)
    return high


def n_to_decide_paired(b: int, c: int, n: int, *, margin: float, alpha: float = 0.05) -> int | None:
    """Total N at which the Tango test would decide if b/n and c/n stayed as observed (a plug-in:
    about a 50% chance of deciding at that N)."""
    z = norm_ppf(1 - alpha)
    pb, pc = b / n, c / n
    if math.isclose(pb - pc, margin):
        return None
    return _bisect_n(lambda big_n: abs(tango_statistic(pb * big_n, pc * big_n, big_n, margin)) >= z, n)


def n_to_decide_single(x: int, n: int, *, margin: float, alpha: float = 0.05) -> int | None:
    p, p0 = x / n, 1 - margin
    if math.isclose(p, p0):
        return None

    def decided(big_n: int) -> bool:
        k = p * big_n
        low = beta_ppf(alpha, k, big_n - k + 1) if k > 0 else 0.0
        high = beta_ppf(1 - alpha, k + 1, big_n - k) if k < big_n else 1.0
        return bool(low >= p0 or high < p0)

    return _bisect_n(decided, n)


def power_single(big_n: int, p: float, *, margin: float, alpha: float = 0.05) -> float:
    """Exact power of the reference-mode test at true agreement p (GO side if 1 − p < δ)."""
    x = np.arange(big_n + 1)
    if 1 - p < margin:
        reject = binom_sf(x - 1, big_n, 1 - margin) <= alpha
    else:
        reject = binom_cdf(x, big_n, 1 - margin) <= alpha
    return float(binom_pmf(x[reject], big_n, p).sum())


def power_paired(big_n: int, pb: float, pc: float, *, margin: float, alpha: float = 0.05) -> float:
    """Exact power of the Tango test, by enumerating the trinomial (b, c) around its mass."""
    z = norm_ppf(1 - alpha)
    go_side = (pb - pc) < margin
    sd_b = math.sqrt(big_n * pb * (1 - pb))
    bs = np.arange(max(0, int(big_n * pb - 9 * sd_b) - 2), min(big_n, int(big_n * pb + 9 * sd_b) + 3) + 1)
    q = pc / (1 - pb) if pb < 1 else 0.0
    total = 0.0
    for b, weight in zip(bs, binom_pmf(bs, big_n, pb), strict=True):
        if weight < 1e-14:
            continue
        m = big_n - int(b)
        sd_c = math.sqrt(m * q * (1 - q))
        cs = np.arange(max(0, int(m * q - 9 * sd_c) - 2), min(m, int(m * q + 9 * sd_c) + 3) + 1)
        t = tango_statistic(b, cs, big_n, margin)
        reject = (t <= -z) if go_side else (t >= z)
        total += weight * binom_pmf(cs[reject], m, q).sum()
    return float(total)


def n_for_power(power_at: Callable[[int], float], start: int, *, target: float = 0.8,
                guard: int = 20) -> int | None:
    """Smallest N whose power is ≥ target at N … N+guard (power zig-zags in N)."""
    first = _bisect_n(lambda big_n: power_at(big_n) >= target, start, limit=200_000)
    if first is None:
        return None
    big_n = max(1, first - guard)
    while not all(power_at(big_n + j) >= target for j in range(guard + 1)):
        big_n += 1
        if big_n > first + 50 * guard:
            return None
    return big_n


# -- the decision ------------------------------------------------------------------------------------
class McNemar(Typed):
    exact_p: float
    mid_p: float


class DecisionDetails(Typed):
    """The numbers behind a verdict; which are set depends on the mode (reference: the agreement test,
    gold: the paired cells and Tango's statistic) and on whether it was a sequential look."""

    n: int | None = None
    # reference mode
    agreements: int | None = None
    p_go: float | None = None
    p_nogo: float | None = None
    wilson_interval: list[float] | None = None
    # gold mode: a both right, b only the reference right, c only the candidate right, d both wrong
    a: int | None = None
    b: int | None = None
    c: int | None = None
    d: int | None = None
    tango_t: float | None = None
    reference_accuracy: float | None = None
    candidate_accuracy: float | None = None
    newcombe_interval: list[float] | None = None
    mcnemar: McNemar | None = None
    # undecided
    n_to_decide: int | None = None
    n_for_80_power: int | None = None
    # a sequential look
    statistic: float | None = None
    nominal_alpha: float | None = None


class Decision(Typed):
    verdict: Verdict
    mode: str
    rule: str
    margin: float  # absolute δ the test used
    alpha: float
    n: int
    loss: float | None  # observed quality loss Δ̂
    loss_interval: tuple[float, float] | None  # two-sided (1 − 2α) interval: the one-sided bounds
    point_verdict: Verdict  # the naive "Δ̂ ≤ δ" rule, shown for contrast
    reason: str
    details: DecisionDetails = DecisionDetails()


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def paired_cells(rows: Iterable[ScoredSample]) -> dict[str, int]:
    """a: both right, b: only the reference right, c: only the candidate right, d: both wrong."""
    cells = {"a": 0, "b": 0, "c": 0, "d": 0}
    for row in rows:
        ref, cand = row.correct("reference"), row.correct("candidate")
        if ref is None or cand is None:
            continue
        cells[{(True, True): "a", (True, False): "b", (False, True): "c",
               (False, False): "d"}[(ref, cand)]] += 1
    return cells


def agreement_counts(rows: Iterable[ScoredSample]) -> tuple[int, int]:
    """(agreements, comparable samples): samples without a valid reference answer do not count."""
    agreements = [row.agree for row in rows if row.agree is not None]
    return int(sum(agreements)), len(agreements)


def decide(rows: list[ScoredSample], *, margin: float, alpha: float = 0.05, relative: bool = False,
           plan_power: bool = True, plan_more: bool = True, mode: str | None = None,
           rows_available: int | None = None, measure: str | None = None) -> Decision:
    """The three-way decision at ``margin`` with one-sided error ``alpha``.

    ``relative``: the margin is a fraction of the reference's observed accuracy (gold mode; a plug-in).
    ``plan_power``: also compute the N for 80% power (exact, slower); per-label decisions skip it.
    ``plan_more``: when undecided, say how many samples would decide it (capped by ``rows_available``).
    ``measure``: what a "right" sample means when it is not the label (e.g. ``team_routing ≥ 0.5``), for the
    reason.
    """
    mode = mode or scoring_mode(rows)
    level = 1 - 2 * alpha
    if mode == "reference":
        x, n = agreement_counts(rows)
        if n == 0:
            return _insufficient(mode, margin, alpha,
                                 "no sample had a valid reference answer to compare against")
        verdict, p_go, p_nogo = decide_single(x, n, margin=margin, alpha=alpha)
        low, high = clopper_pearson_interval(x, n, confidence=level)
        loss, interval = 1 - x / n, (1 - high, 1 - low)
        rule = (f"exact binomial test of agreement ≥ {1 - margin:.3f} (Clopper–Pearson one-sided "
                f"{100 * (1 - alpha):.0f}% bound)")
        details: dict[str, Any] = {
            "agreements": x, "n": n, "p_go": p_go, "p_nogo": p_nogo,
            "wilson_interval": [1 - b for b in reversed(wilson_interval(x, n, confidence=level))],
        }
        subject = _agreement_subject(x / n, measure)
        if verdict == "INCONCLUSIVE" and plan_more:
            details["n_to_decide"] = n_to_decide_single(x, n, margin=margin, alpha=alpha)
            if plan_power:
                details["n_for_80_power"] = n_for_power(
                    lambda big_n: power_single(big_n, x / n, margin=margin, alpha=alpha), n)
    else:
        cells = paired_cells(rows)
        n = sum(cells.values())
        if n == 0:
            return _insufficient(mode, margin, alpha, "no sample was answered by both models")
        a, b, c, d = cells["a"], cells["b"], cells["c"], cells["d"]
        acc_ref, acc_cand = (a + b) / n, (a + c) / n
        if relative:
            margin = margin * acc_ref
        verdict, t = decide_paired(b, c, n, margin=margin, alpha=alpha)
        interval = tango_interval(b, c, n, confidence=level)
        loss = (b - c) / n
        rule = (f"Tango score test of the paired accuracy gap ≤ {_pct(margin)} points (one-sided "
                f"{100 * (1 - alpha):.0f}%)")
        details = dict(cells, n=n, tango_t=t, reference_accuracy=acc_ref, candidate_accuracy=acc_cand,
                       newcombe_interval=list(newcombe_paired_interval(a, b, c, d, confidence=level)),
                       mcnemar=mcnemar_diagnostic(a, b, c, d))
        subject = _accuracy_subject(acc_cand, acc_ref, measure)
        if verdict == "INCONCLUSIVE" and plan_more:
            details["n_to_decide"] = n_to_decide_paired(b, c, n, margin=margin, alpha=alpha)
            if plan_power:
                details["n_for_80_power"] = n_for_power(
                    lambda big_n: power_paired(big_n, b / n, c / n, margin=margin, alpha=alpha), n)
    point: Verdict = "GO" if loss <= margin else "NO-GO"
    bound = (f"quality loss {_pct(loss)} points, {100 * level:.0f}% interval "
             f"[{_pct(interval[0])}, {_pct(interval[1])}]")
    undecided = f"straddles the {_pct(margin)}-point margin." + more_samples_advice(
        details.get("n_to_decide"), n, rows_available)
    reason = _reason(verdict, subject, bound, margin, within="stays within", beyond="lies beyond",
                     undecided=undecided)
    return Decision(verdict=verdict, mode=mode, rule=rule, margin=margin, alpha=alpha, n=n, loss=loss,
                    loss_interval=interval, point_verdict=point, reason=reason,
                    details=DecisionDetails.model_validate(details))


def _agreement_subject(agreement: float, measure: str | None) -> str:
    by = f" ({measure})" if measure else ""
    return f"agreement with the reference{by} is {_pct(agreement)}%"


def _accuracy_subject(candidate: float, reference: float, measure: str | None) -> str:
    what = f"{measure} on" if measure else "accuracy"
    return f"{what} {_pct(candidate)}% vs {_pct(reference)}% for the reference"


def _reason(verdict: str, subject: str, bound: str, margin: float, *, within: str, beyond: str,
            undecided: str, at: str = "") -> str:
    """The one-sentence reason shown with a decision."""
    if verdict == "GO":
        return f"{subject}; {bound} {within} the {_pct(margin)}-point margin{at}."
    if verdict == "NO-GO":
        return f"{subject}; {bound} {beyond} the {_pct(margin)}-point margin{at}."
    return f"{subject}; {bound} {undecided}"


def more_samples_advice(needed: int | None, n: int, rows_available: int | None) -> str:
    """What more data would do for an undecided test, never more than the dataset can give."""
    if rows_available is not None and (needed is None or needed > rows_available):
        return f" The dataset has {rows_available} rows: this decision cannot be reached with it."
    if isinstance(needed, int) and needed > n:
        return f" About {needed - n} more samples (N ≈ {needed}) would likely decide it."
    return " The gap is too close to the margin to settle."


def invalid_run(mode: str, margin: float, alpha: float, n: int, why: str) -> Decision:
    """The verdict of a run whose evidence cannot support one (see :mod:`evalkit.stats.validity`)."""
    return Decision(verdict="INVALID-RUN", mode=mode, rule="validity gate: the evidence is broken",
                    margin=margin,
                    alpha=alpha, n=n, loss=None, loss_interval=None, point_verdict="INVALID-RUN", reason=why)


def _insufficient(mode: str, margin: float, alpha: float, why: str) -> Decision:
    return Decision(verdict="INSUFFICIENT-DATA", mode=mode, rule="none", margin=margin, alpha=alpha, n=0,
                    loss=None, loss_interval=None, point_verdict="INSUFFICIENT-DATA", reason=why)


def plan_sample_size(*, mode: str, expected_gap: float, margin: float, alpha: float = 0.05,
                     power: float = 0.8, discordance: float = 0.02) -> dict[str, Any]:
    """Samples needed for ``power`` at an expected quality loss (reference mode: 1 − agreement;
    gold mode: accuracy gap, with ``discordance`` = P(only the candidate is right))."""
    if expected_gap == margin:
        return {"n": None, "why": "an expected gap equal to the margin can never be decided"}
    if mode == "reference":
        agreement = 1 - expected_gap
        n = n_for_power(lambda big_n: power_single(big_n, agreement, margin=margin, alpha=alpha), 50,
                        target=power)
        side = "GO" if expected_gap < margin else "NO-GO"
        return {"n": n, "side": side, "agreement": agreement}
    pc = discordance
    pb = pc + expected_gap
    if pb > 1 or pb < 0:
        return {"n": None, "why": "expected gap and discordance are not a valid pair of rates"}
    n = n_for_power(lambda big_n: power_paired(big_n, pb, pc, margin=margin, alpha=alpha), 50, target=power)
    side = "GO" if expected_gap < margin else "NO-GO"
    return {"n": n, "side": side, "reference_only_right": pb, "candidate_only_right": pc}


def decide_sequential_look(rows: list[ScoredSample], *, margin: float, alpha: float, boundary: float,
                           look: int, looks: int, n_max: int, relative: bool = False,
                           measure: str | None = None) -> Decision:
    """One look of the group-sequential test (Lan–DeMets O'Brien–Fleming, stats-spec §4.1).

    GO when the statistic crosses −c_k, NO-GO when it crosses +c_k, else continue (INCONCLUSIVE at the
    last look). The interval is the repeated CI at level 1 − 2·α_k, valid at the look where it stopped.
    """
    mode = scoring_mode(rows)
    nominal = float(norm_sf(boundary))  # α_k
    level = 1 - 2 * nominal
    rule = (f"group-sequential test, look {look} of {looks} (n={len(rows)} of {n_max}), "
            f"O'Brien–Fleming boundary ±{boundary:.3f}")
    if mode == "reference":
        x, n = agreement_counts(rows)
        if n == 0:
            return _insufficient(mode, margin, alpha,
                                 "no sample had a valid reference answer to compare against")
        _, p_go, p_nogo = decide_single(x, n, margin=margin, alpha=alpha)
        verdict: Verdict = "GO" if p_go <= nominal else "NO-GO" if p_nogo <= nominal else "INCONCLUSIVE"
        low, high = clopper_pearson_interval(x, n, confidence=level)
        loss, interval = 1 - x / n, (1 - high, 1 - low)
        details: dict[str, Any] = {"agreements": x, "n": n, "p_go": p_go, "p_nogo": p_nogo,
                                   "statistic": p_go if loss < margin else p_nogo, "nominal_alpha": nominal}
        subject = _agreement_subject(x / n, measure)
    else:
        cells = paired_cells(rows)
        n = sum(cells.values())
        if n == 0:
            return _insufficient(mode, margin, alpha, "no sample was answered by both models")
        b, c = cells["b"], cells["c"]
        if relative:
            margin = margin * (cells["a"] + b) / n
        t = tango_statistic(b, c, n, margin)
        verdict = "GO" if t <= -boundary else "NO-GO" if t >= boundary else "INCONCLUSIVE"
        interval = tango_interval(b, c, n, confidence=level)
        loss = (b - c) / n
        details = dict(cells, n=n, tango_t=t, statistic=t, nominal_alpha=nominal)
        subject = _accuracy_subject((cells["a"] + c) / n, (cells["a"] + b) / n, measure)
    stopped_early = verdict in ("GO", "NO-GO") and look < looks
    bound = (f"quality loss {_pct(loss)} points, repeated {100 * level:.1f}% interval "
             f"[{_pct(interval[0])}, {_pct(interval[1])}]")
    reason = _reason(verdict, subject, bound, margin, within="is within", beyond="is beyond",
                     undecided=f"is not decided by the last look ({n} samples).", at=f" at look {look}")
    if stopped_early:
        reason += f" Stopped early: {n_max - len(rows)} of {n_max} samples were not needed."
    point: Verdict = "GO" if loss <= margin else "NO-GO"
    return Decision(verdict=verdict, mode=mode, rule=rule, margin=margin, alpha=alpha, n=n, loss=loss,
                    loss_interval=interval, point_verdict=point, reason=reason,
                    details=DecisionDetails.model_validate(details))
