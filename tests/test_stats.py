"""Intervals and the decision rule, against the reference values in ../shared/reference/stats-spec.md."""

from __future__ import annotations

import pytest
from statsmodels.stats.proportion import proportion_confint

from evalkit.datasets import Sample
from evalkit.outputs import Answer
from evalkit.scoring import ScoredSample
from evalkit.stats import decide, newcombe_paired_interval, wilson_interval


@pytest.mark.parametrize(
    ("x", "n", "expected"),
    [(297, 300, (0.9710, 0.9966)), (291, 300, (0.9440, 0.9841)), (273, 300, (0.8722, 0.9374)),
     (300, 300, (0.9874, 1.0)), (200, 200, (0.9812, 1.0))],
)
def test_wilson_matches_spec_reference_values(x: int, n: int, expected: tuple[float, float]) -> None:
    low, high = wilson_interval(x, n, confidence=0.95)
    assert low == pytest.approx(expected[0], abs=5e-5)
    assert high == pytest.approx(expected[1], abs=5e-5)


def test_wilson_one_sided_lower_bound_matches_spec() -> None:
    # L1 Wilson for 297/300 is the lower end of the two-sided 90% interval.
    assert wilson_interval(297, 300, confidence=0.90)[0] == pytest.approx(0.9752, abs=5e-5)
    assert wilson_interval(282, 300, confidence=0.90)[0] == pytest.approx(0.9133, abs=5e-5)


def test_newcombe_matches_published_example() -> None:
    # Newcombe (1998), Cavo data (a, b, c, d) = (59, 6, 16, 80): published 95% CI (-0.1186, -0.0046)
    # for p1 - p2 where p1 = (a+b)/n and p2 = (a+c)/n.
    low, high = newcombe_paired_interval(59, 6, 16, 80, confidence=0.95)
    assert (low, high) == (pytest.approx(-0.1186, abs=5e-5), pytest.approx(-0.0046, abs=5e-5))


def test_newcombe_reduces_to_marginal_wilson_ends_when_no_discordance_correlation() -> None:
    low, high = newcombe_paired_interval(100, 0, 0, 100, confidence=0.95)
    assert low < 0 < high
    w_low, w_high = proportion_confint(100, 200, alpha=0.05, method="wilson")
    assert high <= (w_high - w_low) + 1e-12


def _row(i: int, gold: str, candidate: str, reference: str) -> ScoredSample:
    sample = Sample(id=f"s{i}", text="t", label=gold, fields={}, input_hash="h")
    return ScoredSample(sample=sample, candidate=Answer(outcome="ok", label=candidate),
                        reference=Answer(outcome="ok", label=reference))


def _paired_rows(a: int, b: int, c: int, d: int) -> list[ScoredSample]:
    """a: both right, b: reference right only, c: candidate right only, d: both wrong."""
    rows = []
    for kind, count in (("a", a), ("b", b), ("c", c), ("d", d)):
        for _ in range(count):
            ref = "x" if kind in "ab" else "y"
            cand = "x" if kind in "ac" else "z"
            rows.append(_row(len(rows), "x", cand, ref))
    return rows


def test_decision_gold_mode_go_nogo_inconclusive() -> None:
    go = decide(_paired_rows(270, 3, 3, 24), margin=0.05)
    assert go.mode == "gold" and go.verdict == "GO"
    assert go.loss == pytest.approx(0.0)
    nogo = decide(_paired_rows(220, 50, 2, 28), margin=0.05)
    assert nogo.verdict == "NO-GO" and nogo.loss_interval[0] > 0.05
    unclear = decide(_paired_rows(255, 18, 6, 21), margin=0.05)  # 4-point gap, n=300
    assert unclear.verdict == "INCONCLUSIVE"
    assert unclear.point_verdict == "GO"  # the naive rule would have said GO


def test_decision_interval_is_newcombe_at_90_percent() -> None:
    decision = decide(_paired_rows(255, 18, 6, 21), margin=0.05, alpha=0.05)
    low, high = newcombe_paired_interval(255, 18, 6, 21, confidence=0.90)
    # loss = p_ref - p_cand: the interval of (p1 - p2) with p1 = reference accuracy.
    assert decision.loss_interval == (pytest.approx(low), pytest.approx(high))


def test_decision_reference_mode_uses_agreement() -> None:
    rows = [_row(i, "x", "x", "x") for i in range(297)] + [_row(297 + i, "x", "y", "x") for i in range(3)]
    rows = [ScoredSample(sample=Sample(id=r.sample.id, text="t", label=None, fields={}, input_hash="h"),
                         candidate=r.candidate, reference=r.reference) for r in rows]
    decision = decide(rows, margin=0.05)
    assert decision.mode == "reference"
    assert decision.loss == pytest.approx(0.01)
    assert decision.verdict == "GO"
    assert decision.loss_interval[1] == pytest.approx(1 - 0.9752, abs=5e-5)
