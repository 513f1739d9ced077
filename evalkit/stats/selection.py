"""Choosing among several candidate configurations without inflating the error of a GO.

Each configuration's decision is a one-sided non-inferiority test (H0: its quality loss is at least the
margin). Testing k of them and recommending whichever passes would make a wrong GO k times as likely, so
the GO verdicts are taken as one family and its family-wise error is kept at α, by one of:

* **Holm** (default): step-down over the k p-values; no assumption about which configuration is likely
  to pass. Controls the family-wise error in the strong sense, so P(any configuration with a loss beyond
  the margin is called GO) ≤ α — and the recommendation, the cheapest configuration called GO, is wrong
  with at most that probability.
* **fixed-sequence**: test from the most to the least expensive configuration, each at the full α,
  stopping at the first that is not GO. More power when quality falls with price (each test spends all
  of α), but a cheap configuration is never reached once a dearer one fails. The order is fixed by
  measured price per request, which does not depend on whether the answers were right.

The p-values are those of the decision itself (Tango's score test with gold labels, the exact binomial
test of agreement without), so a single configuration is recommended exactly when its decision is GO.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from evalkit.stats.decision import Decision
from evalkit.stats.dist import norm_cdf
from evalkit.stats.groups import holm

Method = Literal["holm", "fixed-sequence"]


def p_go(decision: Decision) -> float:
    """The p-value of H0 "the loss is at least the margin" behind a decision (1 when it has none)."""
    details = decision.details
    if decision.verdict in ("INVALID-RUN", "INSUFFICIENT-DATA"):
        return 1.0
    if decision.mode == "reference" and details.p_go is not None:
        return float(details.p_go)
    if details.tango_t is not None:
        return float(norm_cdf(details.tango_t))  # GO iff T ≤ −z  ⇔  Φ(T) ≤ α
    return 1.0


@dataclass(frozen=True)
class Tested:
    """One configuration's place in the family: its p-value, adjusted p-value and adjusted verdict."""

    p: float
    adjusted_p: float
    go: bool


def holm_family(pvalues: Sequence[float], alpha: float) -> list[Tested]:
    """Holm's step-down procedure: GO exactly where the Holm-adjusted p-value is at most α."""
    return [Tested(p=p, adjusted_p=adjusted, go=adjusted <= alpha)
            for p, adjusted in zip(pvalues, holm(pvalues), strict=True)]


def fixed_sequence(pvalues: Sequence[float], costs: Sequence[float], alpha: float) -> list[Tested]:
    """Most expensive first, each at α, until the first non-rejection (adjusted p = running maximum)."""
    order = sorted(range(len(pvalues)), key=lambda i: -costs[i])
    out: dict[int, Tested] = {}
    running, rejecting = 0.0, True
    for index in order:
        running = max(running, pvalues[index])
        rejecting = rejecting and pvalues[index] <= alpha
        out[index] = Tested(p=pvalues[index], adjusted_p=running, go=rejecting)
    return [out[i] for i in range(len(pvalues))]


def family_verdicts(pvalues: Sequence[float], costs: Sequence[float], *, alpha: float,
                method: Method) -> list[Tested]:
    return holm_family(pvalues, alpha) if method == "holm" else fixed_sequence(pvalues, costs, alpha)


def recommend(tested: Sequence[Tested], costs: Sequence[float]) -> int | None:
    """The cheapest configuration called GO after the family-wise correction (None: none is)."""
    passing = [i for i, t in enumerate(tested) if t.go]
    return min(passing, key=lambda i: (costs[i], i)) if passing else None
