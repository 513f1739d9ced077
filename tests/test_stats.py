"""Intervals and the decision rule, against the reference values in docs/reference/stats-spec.md."""

from __future__ import annotations

import pytest
from statsmodels.stats.proportion import proportion_confint

from evalkit.datasets import Sample
from evalkit.scoring.answers import Answer
from evalkit.scoring.samples import ScoredSample
from evalkit.stats.decision import (
    clopper_pearson_interval,
    decide,
    mcnemar_diagnostic,
    n_for_power,
    n_to_decide_paired,
    n_to_decide_single,
    newcombe_paired_interval,
    plan_sample_size,
    power_paired,
    power_single,
    tango_interval,
    wilson_interval,
)
from evalkit.stats.groups import decide_families, split


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


def test_wilson_is_bit_for_bit_statsmodels() -> None:
    """wilson_interval is written out with scipy.special (statsmodels costs a second to import): it must
    give statsmodels' exact floats, not close ones, for every count, size and level evalkit uses."""
    levels = (0.5, 0.8, 0.9, 0.95, 0.975, 0.99, 0.9999)
    sizes = [*range(1, 41), 60, 100, 250, 300, 468, 500, 1000, 3001, 10007]
    checked = 0
    for n in sizes:
        for x in sorted({*range(min(n, 40) + 1), n // 3, n // 2, n - 1, n}):
            for level in levels:
                low, high = proportion_confint(x, n, alpha=1 - level, method="wilson")
                assert wilson_interval(x, n, confidence=level) == (float(low), float(high)), (x, n, level)
                checked += 1
    assert checked > 8_000


def test_clopper_pearson_and_mcnemar_are_bit_for_bit_statsmodels() -> None:
    """Both are written out with the SciPy calls statsmodels makes (statsmodels is not imported on a run):
    the floats must be statsmodels' own."""
    from statsmodels.stats.contingency_tables import mcnemar  # noqa: PLC0415

    for n in [*range(1, 31), 100, 300, 468, 1000, 3001]:
        for x in sorted({*range(min(n, 30) + 1), n // 2, n - 1, n}):
            for level in (0.8, 0.9, 0.95, 0.99):
                low, high = proportion_confint(x, n, alpha=1 - level, method="beta")
                expected = (float(0.0 if x == 0 else low), float(1.0 if x == n else high))
                assert clopper_pearson_interval(x, n, confidence=level) == expected, (x, n, level)
    for b in range(30):
        for c in (0, 1, 2, 5, 13, 29, 60, 250):
            expected_p = float(mcnemar([[40, b], [c, 7]], exact=True).pvalue)
            assert mcnemar_diagnostic(40, b, c, 7)["exact_p"] == expected_p, (b, c)


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


def _paired_rows(a: int, b: int, c: int, d: int, gold: str = "x") -> list[ScoredSample]:
    """a: both right, b: reference right only, c: candidate right only, d: both wrong."""
    rows = []
    for kind, count in (("a", a), ("b", b), ("c", c), ("d", d)):
        for _ in range(count):
            ref = gold if kind in "ab" else "wrong1"
            cand = gold if kind in "ac" else "wrong2"
            rows.append(_row(len(rows), gold, cand, ref))
    return rows


# Spec §2 checks for Tango's interval and McNemar.
@pytest.mark.parametrize(
    ("b", "c", "n", "expected"),
    [(1, 7, 21, (-0.5172, -0.0260)), (6, 16, 161, (-0.1240, -0.0054)), (0, 0, 300, (-0.01264, 0.01264))],
)
def test_tango_interval_matches_spec(b: int, c: int, n: int, expected: tuple[float, float]) -> None:
    low, high = tango_interval(b, c, n, confidence=0.95)
    assert (low, high) == (pytest.approx(expected[0], abs=1e-4), pytest.approx(expected[1], abs=1e-4))


def test_mcnemar_diagnostic_matches_spec() -> None:
    result = mcnemar_diagnostic(252, 18, 6, 24)
    assert result["exact_p"] == pytest.approx(0.0227, abs=1e-4)
    assert result["mid_p"] == pytest.approx(0.0146, abs=1e-4)


# Spec §3 worked examples, mode (b), n = 300: (a, b, c, d), T(δ), Tango 90%, Newcombe 90%, McNemar p,
# decision, plug-in N.
PAIRED_ROWS = [
    ((261, 9, 6, 24), -2.566, (-0.0122, 0.0334), (-0.0126, 0.0332), 0.6072, "GO", 124),
    ((255, 15, 6, 24), -1.232, (0.0052, 0.0575), (0.0043, 0.0570), 0.0784, "INCONCLUSIVE", 536),
    ((252, 18, 6, 24), -0.601, (0.0139, 0.0692), (0.0129, 0.0686), 0.0227, "INCONCLUSIVE", 2246),
    ((246, 24, 6, 24), 0.569, (0.0315, 0.0921), (0.0303, 0.0914), 0.00143, "INCONCLUSIVE", 2506),
    ((237, 33, 6, 24), 2.074, (0.0582, 0.1257), (0.0568, 0.1249), 1.43e-5, "NO-GO", 189),
]


@pytest.mark.parametrize(("cells", "t", "tango", "newcombe", "mcnemar_p", "verdict", "n_plugin"), PAIRED_ROWS)
def test_gold_mode_decision_matches_spec_worked_examples(cells, t, tango, newcombe, mcnemar_p, verdict,
                                                         n_plugin) -> None:
    decision = decide(_paired_rows(*cells), margin=0.05, alpha=0.05, plan_power=False)
    assert decision.mode == "gold" and decision.verdict == verdict
    assert decision.details.tango_t == pytest.approx(t, abs=1e-3)
    assert decision.loss_interval == (pytest.approx(tango[0], abs=1e-4), pytest.approx(tango[1], abs=1e-4))
    assert decision.details.newcombe_interval == [pytest.approx(v, abs=1e-4) for v in newcombe]
    assert decision.details.mcnemar.exact_p == pytest.approx(mcnemar_p, rel=1e-2)
    b, c = cells[1], cells[2]
    assert n_to_decide_paired(b, c, 300, margin=0.05) == n_plugin
    if verdict == "INCONCLUSIVE":
        assert decision.details.n_to_decide == n_plugin
        assert f"About {n_plugin - 300} more samples" in decision.reason


@pytest.mark.parametrize(("b", "c", "expected"), [(9, 6, 243), (15, 6, 1160), (33, 6, 436)])
def test_exact_paired_power_sample_size_matches_spec(b: int, c: int, expected: int) -> None:
    assert n_for_power(lambda big_n: power_paired(big_n, b / 300, c / 300, margin=0.05), 300) == expected


# Spec §3 worked examples, mode (a), n = 300: x, CP one-sided [L, U], p_GO, p_NO-GO, decision, N plug-in,
# N for 80% power.
SINGLE_ROWS = [
    (297, (0.9744, 0.9973), 1.64e-4, 1.0, "GO", 90, 124),
    (291, (0.9482, 0.9843), 0.0650, 0.966, "INCONCLUSIVE", 343, 671),
    (288, (0.9360, 0.9768), 0.261, 0.822, "INCONCLUSIVE", 1332, 2869),
    (282, (0.9123, 0.9609), 0.825, 0.247, "INCONCLUSIVE", 1431, 3370),
    (273, (0.8780, 0.9357), 0.9987, 0.00257, "NO-GO", 114, 273),
]


@pytest.mark.parametrize(("x", "cp", "p_go", "p_nogo", "verdict", "n_plugin", "n_power"), SINGLE_ROWS)
def test_reference_mode_decision_matches_spec_worked_examples(x, cp, p_go, p_nogo, verdict, n_plugin,
                                                              n_power) -> None:
    decision = decide(_reference_rows(x, 300), margin=0.05, plan_power=False)
    assert decision.mode == "reference" and decision.verdict == verdict
    assert decision.details.p_go == pytest.approx(p_go, rel=2e-2)
    assert decision.details.p_nogo == pytest.approx(p_nogo, rel=2e-2)
    low, high = clopper_pearson_interval(x, 300, confidence=0.90)
    assert (low, high) == (pytest.approx(cp[0], abs=1e-4), pytest.approx(cp[1], abs=1e-4))
    assert decision.loss_interval == (pytest.approx(1 - cp[1], abs=1e-4), pytest.approx(1 - cp[0], abs=1e-4))
    assert n_to_decide_single(x, 300, margin=0.05) == n_plugin
    assert n_for_power(lambda big_n: power_single(big_n, x / 300, margin=0.05), 300) == n_power


def test_tango_decision_agrees_with_scipy_binomtest_in_reference_mode() -> None:
    # The GO p-value is scipy's exact binomial test; check the decision boundary moves with it.
    from scipy.stats import binomtest

    for x in range(280, 301):
        decision = decide(_reference_rows(x, 300), margin=0.05, plan_power=False)
        go = binomtest(x, 300, 0.95, alternative="greater").pvalue <= 0.05
        assert (decision.verdict == "GO") == go


def test_point_rule_is_shown_beside_the_decision() -> None:
    unclear = decide(_paired_rows(255, 15, 6, 24), margin=0.05, plan_power=False)
    assert unclear.verdict == "INCONCLUSIVE" and unclear.point_verdict == "GO"


def test_relative_margin_scales_with_reference_accuracy() -> None:
    rows = _paired_rows(255, 15, 6, 24)  # reference accuracy 0.90
    relative = decide(rows, margin=0.05, relative=True, plan_power=False)
    assert relative.margin == pytest.approx(0.045)


def test_per_group_decisions_expose_a_weak_label() -> None:
    good = _paired_rows(95, 1, 1, 3, gold="x")
    bad = _paired_rows(60, 30, 0, 10, gold="y")
    groups = decide_families({"label": split(good + bad, lambda r: r.sample.label)}, margin=0.05,
                             alpha=0.05)["label"]
    assert groups["x"].verdict == "GO" and groups["y"].verdict == "NO-GO"


def test_plan_sample_size() -> None:
    planned = plan_sample_size(mode="gold", expected_gap=0.01, margin=0.05, discordance=0.02)
    assert planned["n"] == 243 and planned["side"] == "GO"
    single = plan_sample_size(mode="reference", expected_gap=0.01, margin=0.05)
    assert single["n"] == 124
    assert plan_sample_size(mode="gold", expected_gap=0.05, margin=0.05)["n"] is None


def _reference_rows(agreements: int, n: int) -> list[ScoredSample]:
    rows = []
    for i in range(n):
        cand = "x" if i < agreements else "y"
        rows.append(ScoredSample(sample=Sample(id=f"s{i}", text="t", label=None, fields={}, input_hash="h"),
                                 candidate=Answer(outcome="ok", label=cand),
                                 reference=Answer(outcome="ok", label="x")))
    return rows
