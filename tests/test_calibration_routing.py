"""Calibration (stats-spec §5) and routing threshold (§6) against the spec's worked example.

The synthetic generator below is the spec's `gen` (reference script), reimplemented exactly so that
`gen(400, default_rng(0))` reproduces the spec's sample.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from evalkit.routing.calibration import (
    auroc,
    brier,
    calibration_report,
    ece,
    ece_by_level,
    recalibrate_cv,
    reliability_diagram,
)
from evalkit.routing.thresholds import (
    GRID,
    cross_fit,
    pareto_front,
    pick_budget,
    pick_crc,
    pick_ltt,
    pick_naive,
    pick_target_escalation,
    prepare_confidence,
    sweep,
)

# ----------------------------------------------------------------------------- spec generator
LEVELS = np.round(np.arange(50, 101, 5) / 100, 2)
PLEV = np.array([1, 1, 2, 2, 3, 4, 6, 8, 10, 12, 9], float)
PLEV /= PLEV.sum()
P_REF = (0.70, 0.95)  # P(ref correct | cand wrong), P(ref correct | cand right)
C_CAND, C_REF = 1.0, 3.0
ALPHA, DELTA = 0.05, 0.10


def acc_of(conf: np.ndarray) -> np.ndarray:
    return 0.40 + 0.58 * conf**2  # the candidate is over-confident


def gen(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    conf = rng.choice(LEVELS, size=n, p=PLEV)
    cand = (rng.random(n) < acc_of(conf)).astype(int)
    u = rng.random(n)
    ref = np.where(cand == 1, u < P_REF[1], u < P_REF[0]).astype(int)
    return conf, cand, ref


def true_route(t: float) -> tuple[float, float, float]:
    """Population (harm R, escalation, routed accuracy) at threshold t, from the generator's probabilities."""
    keep = LEVELS >= t
    pc = acc_of(LEVELS)
    pr = pc * P_REF[1] + (1 - pc) * P_REF[0]
    return (
        float(np.sum(PLEV * keep * (1 - pc) * P_REF[0])),
        float(np.sum(PLEV * ~keep)),
        float(np.sum(PLEV * np.where(keep, pc, pr))),
    )


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return gen(400, np.random.default_rng(0))


@pytest.fixture(scope="module")
def rows(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> list[dict]:
    conf, cand, ref = data
    return sweep(conf, cand, ref, cost_candidate=C_CAND, cost_reference=C_REF, alpha=ALPHA)


def _row(rows: list[dict], t: float) -> dict:
    return next(r for r in rows if r["t"] == pytest.approx(t))


# ----------------------------------------------------------------------------- calibration
def test_sample_matches_spec(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    conf, cand, ref = data
    assert cand.mean() == pytest.approx(0.835, abs=1e-12)
    assert ref.mean() == pytest.approx(0.9425, abs=1e-12)
    assert conf.mean() == pytest.approx(0.8658, abs=1e-4)


def test_raw_calibration_metrics(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    conf, y, _ = data
    assert ece(y, conf) == pytest.approx(0.0477, abs=1e-4)
    assert ece(y, conf, 10, "quantile") == pytest.approx(0.0558, abs=1e-4)
    assert ece_by_level(y, conf) == pytest.approx(0.0557, abs=1e-4)
    assert brier(y, conf) == pytest.approx(0.1308, abs=1e-4)
    assert auroc(y, conf) == pytest.approx(0.6951, abs=1e-4)


def test_population_ece_is_smaller_than_sample_ece() -> None:
    # §5: ECE is biased upward at n=400 (population 0.025 vs sample 0.056)
    assert float(np.sum(PLEV * np.abs(acc_of(LEVELS) - LEVELS))) == pytest.approx(0.0252, abs=1e-4)


def test_reliability_diagram(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    conf, y, _ = data
    rd = reliability_diagram(y, conf)
    np.testing.assert_allclose(rd["prob_pred"], [0.5, 0.5853, 0.6757, 0.7796, 0.8785, 0.9727], atol=1e-4)
    np.testing.assert_allclose(rd["prob_true"], [0.5, 0.7059, 0.7143, 0.7037, 0.8537, 0.9202], atol=1e-4)
    assert sum(rd["counts"]) == 400 and len(rd["counts"]) == 6
    # counts are consistent with the bin means: Σ n_b·|acc_b − conf_b| / n is the ECE
    gap = np.abs(np.array(rd["prob_true"]) - np.array(rd["prob_pred"]))
    assert float(np.dot(rd["counts"], gap) / 400) == pytest.approx(ece(y, conf), abs=1e-12)


def test_ece_binning_matches_sklearn_quantile_and_right_closed_bins() -> None:
    rng = np.random.default_rng(3)
    p = np.round(rng.random(300), 2)
    y = (rng.random(300) < p).astype(int)
    for strategy in ("uniform", "quantile"):
        prob_true, prob_pred = calibration_curve(y, p, n_bins=7, strategy=strategy)
        # Recover bin counts by solving ECE with sklearn's bin means is not possible, so compare against a
        # direct computation using sklearn's documented binning
        edges = np.linspace(0, 1, 8) if strategy == "uniform" else np.percentile(p, np.linspace(0, 100, 8))
        ids = np.searchsorted(edges[1:-1], p)
        counts = np.bincount(ids, minlength=7)
        counts = counts[counts > 0]
        expected = float(np.sum(counts * np.abs(prob_true - prob_pred)) / p.size)
        assert ece(y, p, 7, strategy) == pytest.approx(expected, abs=1e-12)
    # p = 0.9 lands in (0.8, 0.9]: a lone sample at 0.9 and one at 0.95 share no bin
    assert ece([1, 0], [0.9, 0.95]) == pytest.approx((0.1 + 0.95) / 2)


def test_recalibration_cv(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    conf, y, _ = data
    iso = recalibrate_cv(y, conf, "isotonic")
    platt = recalibrate_cv(y, conf, "platt")
    assert ece(y, iso) == pytest.approx(0.0325, abs=1e-4)
    assert ece(y, iso, 10, "quantile") == pytest.approx(0.0526, abs=1e-4)
    assert brier(y, iso) == pytest.approx(0.1330, abs=1e-4)
    assert auroc(y, iso) == pytest.approx(0.6524, abs=1e-4)
    assert ece(y, platt) == pytest.approx(0.0207, abs=1e-4)
    assert ece(y, platt, 10, "quantile") == pytest.approx(0.0380, abs=1e-4)
    assert brier(y, platt) == pytest.approx(0.1304, abs=1e-4)
    assert auroc(y, platt) == pytest.approx(0.6803, abs=1e-4)
    with pytest.raises(ValueError):
        recalibrate_cv(y, conf, "beta")  # type: ignore[arg-type]


def test_calibration_report(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    conf, y, _ = data
    rep = calibration_report(y, conf)
    assert rep["n"] == 400 and rep["n_missing_confidence"] == 0 and rep["n_levels"] == 11
    assert rep["accuracy"] == pytest.approx(0.835)
    assert rep["mean_confidence"] == pytest.approx(0.8658, abs=1e-4)
    assert rep["ece_uniform10"] == pytest.approx(0.0477, abs=1e-4)
    assert rep["ece_quantile10"] == pytest.approx(0.0558, abs=1e-4)
    assert rep["ece_by_level"] == pytest.approx(0.0557, abs=1e-4)
    assert rep["brier"] == pytest.approx(0.1308, abs=1e-4)
    assert rep["auroc"] == pytest.approx(0.6951, abs=1e-4)
    assert rep["reliability"]["prob_true"][1] == pytest.approx(0.7059, abs=1e-4)
    assert rep["isotonic_cv"]["brier"] == pytest.approx(0.1330, abs=1e-4)
    assert rep["platt_cv"]["ece_uniform10"] == pytest.approx(0.0207, abs=1e-4)
    assert rep["recalibration_helps"] == "platt"  # isotonic-CV makes Brier worse at n=400 (spec §5)


def test_calibration_report_edge_cases() -> None:
    # missing confidences are dropped; one class → AUROC None and no CV recalibration
    rep = calibration_report([1, 1, 1, 0], [0.9, 0.8, 0.7, np.nan])
    assert rep["n"] == 3 and rep["n_missing_confidence"] == 1
    assert rep["auroc"] is None and rep["isotonic_cv"] is None and rep["platt_cv"] is None
    assert rep["recalibration_helps"] is None
    # > 20 distinct levels: no ECE by level
    p = np.linspace(0.5, 1.0, 30)
    rep = calibration_report((p > 0.7).astype(int), p)
    assert rep["n_levels"] == 30 and rep["ece_by_level"] is None
    assert auroc([0, 1], [0.2, 0.7]) == 1.0
    with pytest.raises(ValueError):
        ece([1, 0], [0.5, 1.5])
    with pytest.raises(ValueError):
        brier([1, 2], [0.5, 0.5])


# ----------------------------------------------------------------------------- routing
SPEC_SWEEP = {  # t: (esc, routed acc, harm R̂, k, cost, LTT p)
    0.50: (0.0, 0.8350, 0.1225, 49, 1.000, 1.0),
    0.80: (0.2050, 0.8775, 0.0800, 32, 1.615, 0.9962),
    0.85: (0.2850, 0.8950, 0.0625, 25, 1.855, 0.8935),
    0.90: (0.4175, 0.9100, 0.0475, 19, 2.2525, 0.468),
    0.95: (0.5925, 0.9200, 0.0275, 11, 2.7775, 0.01905),
    1.00: (0.8150, 0.9425, 0.0050, 2, 3.445, 2.99e-7),
    1.01: (1.0, 0.9425, 0.0, 0, 4.000, 1.23e-9),
}


@pytest.mark.parametrize("t", sorted(SPEC_SWEEP))
def test_sweep_matches_spec_table(rows: list[dict], t: float) -> None:
    esc, acc, risk, k, cost, p = SPEC_SWEEP[t]
    row = _row(rows, t)
    assert row["escalation_rate"] == pytest.approx(esc, abs=1e-4)
    assert row["routed_accuracy"] == pytest.approx(acc, abs=1e-4)
    assert row["harm_rate"] == pytest.approx(risk, abs=1e-4)
    assert row["harm_count"] == k
    assert row["cost"] == pytest.approx(cost, abs=1e-4)
    assert row["ltt_p"] == pytest.approx(p, rel=0.01)


def test_sweep_shape_and_monotonicity(rows: list[dict]) -> None:
    assert [r["t"] for r in rows] == GRID.tolist()
    assert GRID[0] == 0.0 and GRID[-1] == 1.01 and len(GRID) == 102
    assert all(r["n"] == 400 for r in rows)
    harm = [r["harm_count"] for r in rows]
    esc = [r["escalation_rate"] for r in rows]
    assert all(a >= b for a, b in pairwise(harm))
    assert all(a <= b for a, b in pairwise(esc))


def test_true_route_helper_matches_spec() -> None:
    assert true_route(0.90)[:2] == pytest.approx((0.0290, 0.4655), abs=1e-4)
    assert true_route(0.95)[:2] == pytest.approx((0.0133, 0.6379), abs=1e-4)
    assert true_route(1.01)[:2] == pytest.approx((0.0, 1.0), abs=1e-12)


def test_picks_match_spec(rows: list[dict]) -> None:
    assert pick_naive(rows, ALPHA) == pytest.approx(0.86)
    assert pick_crc(rows, ALPHA, 400) == pytest.approx(0.86)
    assert pick_crc(rows, ALPHA) == pytest.approx(0.86)  # n taken from the rows
    assert pick_ltt(rows, ALPHA, DELTA) == pytest.approx(0.91)
    assert true_route(0.91)[0] == pytest.approx(0.0133, abs=1e-4)
    # row order does not matter
    assert pick_ltt(list(reversed(rows)), ALPHA, DELTA) == pytest.approx(0.91)
    assert pick_naive(list(reversed(rows)), ALPHA) == pytest.approx(0.86)


def test_picks_infeasible() -> None:
    conf, cand, ref = np.full(10, 0.9), np.zeros(10), np.ones(10)
    small = sweep(conf, cand, ref, cost_candidate=1, cost_reference=3)
    assert pick_crc(small, ALPHA) is None  # CRC needs n ≥ 1/α − 1
    assert pick_ltt(small, ALPHA, DELTA) is None  # p(1.01) = 0.95^10 > δ
    assert pick_naive(small, ALPHA) == pytest.approx(0.91)


def test_pick_budget_and_target_escalation(rows: list[dict], data: tuple) -> None:
    conf = data[0]
    t = pick_budget(rows, 2.0)  # FrugalGPT-style: acc 0.895, cost 1.855, harm 0.0625 > α
    assert t is not None and t == pytest.approx(0.81)
    assert _row(rows, t)["harm_rate"] == pytest.approx(0.0625)
    assert pick_budget(rows, 0.5) is None
    assert pick_budget(rows, 10.0) == pytest.approx(0.96)  # max acc 0.9425, cheapest such t
    t = pick_target_escalation(conf, 0.30)
    assert t is not None and t == pytest.approx(0.86)  # ties: 30% asked, 41.75% achieved
    assert _row(rows, t)["escalation_rate"] == pytest.approx(0.4175)
    assert pick_target_escalation(conf, 0.0) == 0.0
    assert pick_target_escalation(conf, 1.0) == pytest.approx(1.01)


def test_missing_confidence_is_always_escalated() -> None:
    assert prepare_confidence([0.5, None, np.nan, -np.inf, 0.8499999]).tolist() == [0.5, -1, -1, -1, 0.85]
    conf = [None, np.nan, -np.inf, 1.0]
    r = sweep(conf, [0, 0, 0, 0], [1, 1, 1, 1], cost_candidate=1, cost_reference=3, grid=[0.0, 1.0])
    assert r[0]["escalation_rate"] == 0.75 and r[0]["harm_count"] == 1
    assert r[1]["escalation_rate"] == 0.75
    with pytest.raises(ValueError):
        sweep([1.5], [1], [1], cost_candidate=1, cost_reference=3)
    with pytest.raises(ValueError):
        sweep([0.5, 0.6], [1], [1, 1], cost_candidate=1, cost_reference=3)


def test_mode_a_agreement_inputs() -> None:
    # mode (a): ref_correct = all ones, cand_correct = agreement → harm = 1[conf ≥ t]·(1 − agree)
    conf = np.array([0.6, 0.7, 0.9, 0.95])
    agree = np.array([0, 1, 0, 1])
    r = sweep(conf, agree, np.ones(4), cost_candidate=1, cost_reference=3, grid=[0.65, 0.95])
    assert [x["harm_count"] for x in r] == [1, 0]
    assert [x["routed_accuracy"] for x in r] == [0.75, 1.0]


def _selector(conf: np.ndarray, cand: np.ndarray, ref: np.ndarray, rule: str):
    def select(train: np.ndarray) -> float | None:
        sw = sweep(conf[train], cand[train], ref[train], cost_candidate=C_CAND, cost_reference=C_REF)
        return pick_ltt(sw, ALPHA, DELTA) if rule == "ltt" else pick_crc(sw, ALPHA, len(train))

    return select


def test_cross_fit_ltt(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    conf, cand, ref = data
    select = _selector(conf, cand, ref, "ltt")
    res = cross_fit(conf, cand, ref, select, cost_candidate=C_CAND, cost_reference=C_REF)
    np.testing.assert_allclose(res["fold_thresholds"], [0.91, 0.91, 0.91, 0.91, 0.96])
    assert res["escalation_rate"] == pytest.approx(0.6275, abs=1e-4)
    assert res["routed_accuracy"] == pytest.approx(0.9200, abs=1e-4)
    assert res["harm_rate"] == pytest.approx(0.0275, abs=1e-4)
    assert res["cost"] == pytest.approx(2.8825, abs=1e-4)
    assert res["threshold_min"] == 0.91 and res["threshold_max"] == 0.96
    assert res["folds_without_threshold"] == 0


def test_cross_fit_crc(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    conf, cand, ref = data
    select = _selector(conf, cand, ref, "crc")
    res = cross_fit(conf, cand, ref, select, cost_candidate=C_CAND, cost_reference=C_REF)
    np.testing.assert_allclose(res["fold_thresholds"], [0.86, 0.91, 0.91, 0.86, 0.86])
    assert res["escalation_rate"] == pytest.approx(0.4750, abs=1e-4)
    assert res["routed_accuracy"] == pytest.approx(0.9075, abs=1e-4)
    assert res["harm_rate"] == pytest.approx(0.0475, abs=1e-4)
    assert res["cost"] == pytest.approx(2.425, abs=1e-4)


def test_cross_fit_without_threshold_escalates_everything(data: tuple) -> None:
    conf, cand, ref = data
    res = cross_fit(conf, cand, ref, lambda train: None, cost_candidate=C_CAND, cost_reference=C_REF)
    assert res["escalation_rate"] == 1.0 and res["harm_rate"] == 0.0
    assert res["routed_accuracy"] == pytest.approx(0.9425)
    assert res["folds_without_threshold"] == 5 and res["threshold_min"] is None


def test_pareto_front(rows: list[dict]) -> None:
    front = pareto_front(rows)
    costs = [r["cost"] for r in front]
    accs = [r["routed_accuracy"] for r in front]
    assert costs == sorted(costs) and all(a < b for a, b in pairwise(accs))
    assert front[0]["t"] == 0.0 and front[-1]["t"] == pytest.approx(0.96)
    assert len({(r["cost"], r["routed_accuracy"]) for r in front}) == len(front)
    for r in rows:  # every row is weakly dominated by some front row
        assert any(f["cost"] <= r["cost"] and f["routed_accuracy"] >= r["routed_accuracy"] for f in front)
    assert 1.01 not in [r["t"] for r in front]  # same accuracy as t=0.96 at higher cost


def test_ltt_validity_small_simulation() -> None:
    """200 fresh calibration sets: LTT keeps P(true R > α) ≤ δ; the naive rule does not (§6.3)."""
    rng = np.random.default_rng(12345)
    exceed = {"naive": 0, "ltt": 0}
    reps = 200
    for _ in range(reps):
        sw = sweep(*gen(400, rng), cost_candidate=C_CAND, cost_reference=C_REF)
        for name, t in (("naive", pick_naive(sw, ALPHA)), ("ltt", pick_ltt(sw, ALPHA, DELTA))):
            assert t is not None
            exceed[name] += true_route(t)[0] > ALPHA + 1e-12
    assert exceed["ltt"] / reps <= DELTA + 0.02  # spec: 0.011 over 2000 sets
    assert exceed["naive"] / reps > DELTA  # spec: 0.169 over 2000 sets


@pytest.mark.parametrize("seed", range(6))
def test_the_threshold_sweep_counts_equal_the_matrix_computation_it_replaced(seed: int) -> None:
    # Issue 20: the sweep built thresholds x samples matrices (five of 10 MB each at 100k samples); it now
    # counts from sorted confidences. Every figure must be the same float, missing confidences included.
    from evalkit.routing.thresholds import GRID, prepare_confidence, sweep

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3_000))
    conf = rng.choice([0.5, 0.7, 0.8, 0.9, 0.95, 1.0, np.nan], size=n).tolist()
    cand, ref = rng.uniform(size=n) < 0.8, rng.uniform(size=n) < 0.9
    rows = sweep(conf, cand, ref, cost_candidate=0.2, cost_reference=1.0)
    c, ts = prepare_confidence(conf), np.round(np.sort(GRID), 2)
    esc = c[None, :] < ts[:, None]
    routed = np.where(esc, ref[None, :], cand[None, :])
    harm = (~esc & (ref & ~cand)[None, :]).sum(axis=1)
    assert [row["escalation_rate"] for row in rows] == [float(v) for v in esc.mean(axis=1)]
    assert [row["routed_accuracy"] for row in rows] == [float(routed[j].mean()) for j in range(ts.size)]
    assert [row["harm_count"] for row in rows] == [int(v) for v in harm]
    assert [row["cost"] for row in rows] == [float(0.2 + e * 1.0) for e in esc.mean(axis=1)]
