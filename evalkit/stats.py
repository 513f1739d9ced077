"""Statistics for the go/no-go decision.

The decision is framed as quality loss Δ of the candidate: Δ = 1 − agreement when the reference is the
truth (mode "reference"), Δ = accuracy(reference) − accuracy(candidate) with gold labels (mode "gold").
GO when the one-sided (1−α) upper bound on Δ is ≤ margin, NO-GO when the lower bound is > margin,
INCONCLUSIVE otherwise. See ../shared/reference/stats-spec.md §1–3.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from statsmodels.stats.proportion import proportion_confint

from evalkit.scoring import ScoredSample, scoring_mode

Verdict = Literal["GO", "NO-GO", "INCONCLUSIVE", "INSUFFICIENT-DATA"]


def wilson_interval(successes: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Wilson score interval for a proportion."""
    if n <= 0:
        return (math.nan, math.nan)
    low, high = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    return float(low), float(high)


def newcombe_paired_interval(a: int, b: int, c: int, d: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe (1998) method 10 interval for p1 − p2 of paired proportions, built on Wilson limits.

    Cells: a both right, b only model 1 right, c only model 2 right, d both wrong. No library offers a
    paired-difference interval (statsmodels has only the independent-samples one), hence this code.
    """
    n = a + b + c + d
    if n == 0:
        return (math.nan, math.nan)
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, confidence=confidence)
    l2, u2 = wilson_interval(a + c, n, confidence=confidence)
    big_a = (a + b) * (c + d) * (a + c) * (b + d)
    big_b = a * d - b * c
    if big_a == 0:
        phi = 0.0
    elif big_b > n / 2:
        phi = (big_b - n / 2) / math.sqrt(big_a)
    elif big_b >= 0:
        phi = 0.0
    else:
        phi = big_b / math.sqrt(big_a)
    delta = p1 - p2
    lower = delta - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    upper = delta + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return lower, upper


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    mode: str
    rule: str
    margin: float
    alpha: float
    n: int
    loss: float | None  # observed quality loss Δ̂
    loss_interval: tuple[float, float] | None  # two-sided (1 − 2α) interval on Δ = one-sided (1 − α) bounds
    point_verdict: Verdict  # the naive "Δ̂ ≤ margin" rule, shown for contrast
    reason: str
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["loss_interval"] = list(self.loss_interval) if self.loss_interval else None
        return data


def _verdict(lower: float, upper: float, margin: float) -> Verdict:
    if upper <= margin:
        return "GO"
    if lower > margin:
        return "NO-GO"
    return "INCONCLUSIVE"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def decide(rows: list[ScoredSample], *, margin: float, alpha: float = 0.05) -> Decision:
    """The three-way decision at ``margin`` with one-sided error ``alpha``."""
    mode = scoring_mode(rows)
    level = 1 - 2 * alpha  # two-sided level whose ends are the one-sided (1 − α) bounds
    if mode == "reference":
        agreements = [row.agree for row in rows if row.agree is not None]
        n = len(agreements)
        x = sum(agreements)
        if n == 0:
            return _insufficient(mode, margin, alpha, "no sample had a valid reference answer to compare against")
        low, high = wilson_interval(x, n, confidence=level)
        loss = 1 - x / n
        interval = (1 - high, 1 - low)
        rule = f"Wilson one-sided {100 * (1 - alpha):.0f}% bound on agreement with the reference"
        details = {"agreements": x, "n": n}
        subject = f"agreement with the reference is {_pct(x / n)}%"
    else:
        cells = {"a": 0, "b": 0, "c": 0, "d": 0}
        for row in rows:
            ref, cand = row.correct("reference"), row.correct("candidate")
            if ref is None or cand is None:
                continue
            key = {(True, True): "a", (True, False): "b", (False, True): "c", (False, False): "d"}[(ref, cand)]
            cells[key] += 1
        n = sum(cells.values())
        if n == 0:
            return _insufficient(mode, margin, alpha, "no sample was answered by both models")
        interval = newcombe_paired_interval(cells["a"], cells["b"], cells["c"], cells["d"], confidence=level)
        loss = (cells["b"] - cells["c"]) / n
        rule = f"Newcombe/Wilson paired one-sided {100 * (1 - alpha):.0f}% bound on the accuracy gap vs gold"
        details = dict(cells, n=n)
        acc_ref, acc_cand = (cells["a"] + cells["b"]) / n, (cells["a"] + cells["c"]) / n
        subject = f"accuracy {_pct(acc_cand)}% vs {_pct(acc_ref)}% for the reference"
    verdict = _verdict(interval[0], interval[1], margin)
    point = "GO" if loss <= margin else "NO-GO"
    bound_text = f"quality loss {_pct(loss)} points, {100 * level:.0f}% interval [{_pct(interval[0])}, {_pct(interval[1])}]"
    if verdict == "GO":
        reason = f"{subject}; {bound_text} stays within the {_pct(margin)}-point margin."
    elif verdict == "NO-GO":
        reason = f"{subject}; {bound_text} lies entirely beyond the {_pct(margin)}-point margin."
    else:
        reason = (f"{subject}; {bound_text} straddles the {_pct(margin)}-point margin: "
                  "more samples are needed to decide.")
    return Decision(verdict=verdict, mode=mode, rule=rule, margin=margin, alpha=alpha, n=n, loss=loss,
                    loss_interval=interval, point_verdict=point, reason=reason, details=details)


def _insufficient(mode: str, margin: float, alpha: float, why: str) -> Decision:
    return Decision(verdict="INSUFFICIENT-DATA", mode=mode, rule="none", margin=margin, alpha=alpha, n=0,
                    loss=None, loss_interval=None, point_verdict="INSUFFICIENT-DATA", reason=why, details={})
