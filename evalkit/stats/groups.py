"""The decision repeated within each label and segment — with its error rate under control.

Testing every group at α would raise a false "NO-GO inside a group" alarm in most runs with many groups
(12% of runs with 9 groups 2 points from the reference, 31% at the margin). So the groups of a run are one
family: their one-sided p-values are adjusted with Holm's step-down method (valid under any dependence
between groups; uniformly more powerful than Bonferroni), and a group's verdict is GO or NO-GO only when
its adjusted p-value is ≤ α. The family-wise rate of any false alarm then stays ≤ α — provided each
p-value is valid, which is why gold-mode groups use exact unconditional p-values
(:mod:`evalkit.stats.exact`) rather than Tango's asymptotic ones. Groups smaller than
``min_size`` get no verdict at all: a test on three samples says nothing (P(NO-GO) = 0.125 at n = 3).
The unadjusted per-group verdict is kept, labelled exploratory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from evalkit._typed import Typed
from evalkit.scoring.samples import ScoredSample, scoring_mode
from evalkit.stats.decision import Decision, Verdict, decide
from evalkit.stats.dist import norm_cdf, norm_sf
from evalkit.stats.exact import MAX_EXACT_N, exact_paired_pvalues

#: Below this many samples a group is shown without a verdict (``decision.min_group_size``).
MIN_GROUP_SIZE = 30


class GroupDecision(Typed):
    """One group's evidence: the family-adjusted verdict (None when the group is too small to test)."""

    n: int
    verdict: Verdict | None
    exploratory_verdict: Verdict  # the group tested alone, at α, without the multiplicity correction
    p_go_adjusted: float | None
    p_nogo_adjusted: float | None
    decision: Decision  # the group's own test: loss, interval, reason
    note: str


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order: sorted ascending, ``p_(i) · (m − i)``, made monotone and
    capped at 1. (The same numbers as statsmodels' ``multipletests(method="holm")``, which a test checks;
    that function runs a full garbage collection on every call, 0.1 s — too slow for a family per run.)"""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def _p_values(decision: Decision) -> tuple[float, float] | None:
    """(p for GO, p for NO-GO) of a group's one-sided tests at the margin: exact binomial without gold,
    exact unconditional with it (Tango's asymptotic test over-alarms in small groups), Tango beyond
    :data:`~evalkit.stats.exact.MAX_EXACT_N` samples."""
    details = decision.details
    if decision.mode == "reference" and details.p_go is not None and details.p_nogo is not None:
        return details.p_go, details.p_nogo
    if details.b is not None and details.c is not None and details.n and details.n <= MAX_EXACT_N:
        return exact_paired_pvalues(details.b, details.c, details.n, decision.margin)
    if details.tango_t is not None:
        return float(norm_cdf(details.tango_t)), float(norm_sf(details.tango_t))
    return None


def decide_families(
    dimensions: dict[str, dict[str, list[ScoredSample]]],
    *,
    margin: float,
    alpha: float,
    relative: bool = False,
    min_size: int = MIN_GROUP_SIZE,
) -> dict[str, dict[str, GroupDecision]]:
    """Every group of every dimension, decided as one family (Holm) at one-sided ``alpha``."""
    every = [row for groups in dimensions.values() for members in groups.values() for row in members]
    mode = scoring_mode(every)
    tested: list[tuple[str, str, Decision]] = []
    for dimension, groups in dimensions.items():
        for name, members in sorted(groups.items()):
            tested.append(
                (
                    dimension,
                    name,
                    decide(
                        members,
                        margin=margin,
                        alpha=alpha,
                        relative=relative,
                        plan_power=False,
                        plan_more=False,
                        mode=mode,
                    ),
                )
            )
    eligible = [
        i
        for i, (_, _, decision) in enumerate(tested)
        if decision.n >= min_size and _p_values(decision) is not None
    ]
    adjusted: dict[int, tuple[float, float]] = {}
    if eligible:
        pairs = [_p_values(tested[i][2]) for i in eligible]
        go = holm([p[0] for p in pairs if p])
        nogo = holm([p[1] for p in pairs if p])
        adjusted = {i: (float(g), float(b)) for i, g, b in zip(eligible, go, nogo, strict=True)}
    family = len(eligible)
    out: dict[str, dict[str, GroupDecision]] = {dimension: {} for dimension in dimensions}
    for index, (dimension, name, decision) in enumerate(tested):
        if index not in adjusted:
            why = (
                f"{decision.n} samples: too few to test (groups need at least {min_size}); shown without a "
                "verdict"
                if decision.n < min_size
                else decision.reason
            )
            out[dimension][name] = GroupDecision(
                n=decision.n,
                verdict=None,
                exploratory_verdict=decision.verdict,
                p_go_adjusted=None,
                p_nogo_adjusted=None,
                decision=decision,
                note=why,
            )
            continue
        p_go, p_nogo = adjusted[index]
        verdict: Verdict = "GO" if p_go <= alpha else "NO-GO" if p_nogo <= alpha else "INCONCLUSIVE"
        note = (
            f"one of {family} groups tested together (Holm): adjusted p = {p_nogo:.3g} for NO-GO, "
            f"{p_go:.3g} for GO"
        )
        out[dimension][name] = GroupDecision(
            n=decision.n,
            verdict=verdict,
            exploratory_verdict=decision.verdict,
            p_go_adjusted=p_go,
            p_nogo_adjusted=p_nogo,
            decision=decision,
            note=note,
        )
    return out


def split(
    rows: Sequence[ScoredSample], key: Callable[[ScoredSample], str | None]
) -> dict[str, list[ScoredSample]]:
    groups: dict[str, list[ScoredSample]] = {}
    for row in rows:
        name = key(row)
        if name is not None:
            groups.setdefault(name, []).append(row)
    return groups
