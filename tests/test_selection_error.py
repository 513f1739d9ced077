"""The recommendation across several configurations keeps its error rate: by seeded simulation, the chance of
recommending a configuration whose true loss is beyond the margin stays at α with the family-wise
correction (Holm or fixed-sequence), while picking the cheapest configuration that is GO on its own does
not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from evalkit.stats.decision import decide_paired, tango_statistic
from evalkit.stats.selection import family_verdicts, fixed_sequence, holm_family, recommend

MARGIN, ALPHA, N, REPS = 0.05, 0.05, 300, 4000
REFERENCE_RIGHT, CANDIDATE_ONLY = 0.8, 0.1  # P(reference right); P(candidate right | reference wrong)


def _simulate(losses: list[float], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(b, c) per replicate and configuration: every configuration answers the same samples, against one
    shared reference (so their tests are correlated, as in a real run)."""
    rng = np.random.default_rng(seed)
    reference = rng.random((REPS, N)) < REFERENCE_RIGHT
    bs, cs = [], []
    for loss in losses:
        # loss = P(only the reference right) − P(only the candidate right)
        wrong_when_reference_right = (loss + (1 - REFERENCE_RIGHT) * CANDIDATE_ONLY) / REFERENCE_RIGHT
        draw = rng.random((REPS, N))
        candidate = np.where(reference, draw >= wrong_when_reference_right, draw < CANDIDATE_ONLY)
        bs.append((reference & ~candidate).sum(axis=1))
        cs.append((~reference & candidate).sum(axis=1))
    return np.stack(bs, axis=1), np.stack(cs, axis=1)


def _wrong_recommendations(losses: list[float], costs: list[float], method: str, seed: int) -> float:

    b, c = _simulate(losses, seed)
    p = stats.norm.cdf(tango_statistic(b, c, N, MARGIN))  # the decision's own GO p-value
    wrong = 0
    for row in p:
        if method == "unadjusted":
            passing = [i for i, value in enumerate(row) if value <= ALPHA]
            chosen = min(passing, key=lambda i: costs[i]) if passing else None
        else:
            chosen = recommend(family_verdicts(list(row), costs, alpha=ALPHA, method=method), costs)  # type: ignore[arg-type]
        wrong += chosen is not None and losses[chosen] >= MARGIN
    return wrong / REPS


#: Two configurations exactly at the margin (the worst case of H0) are the cheapest; two are clearly fine.
SCENARIO = ([MARGIN, MARGIN, 0.0, -0.01], [0.1, 0.2, 2.0, 5.0])
SLACK = 3 * (ALPHA * (1 - ALPHA) / REPS) ** 0.5  # three Monte Carlo standard errors


@pytest.mark.parametrize("method", ["holm", "fixed-sequence"])
def test_a_wrong_recommendation_is_at_most_alpha(method: str) -> None:
    losses, costs = SCENARIO
    rate = _wrong_recommendations(losses, costs, method, seed=11)
    assert rate <= ALPHA + SLACK, f"{method}: wrong recommendation rate {rate:.4f}"


def test_picking_the_cheapest_go_without_correction_is_wrong_too_often() -> None:
    """What the correction is for: two bad configurations tested alone give two chances at a false GO."""
    losses, costs = SCENARIO
    assert _wrong_recommendations(losses, costs, "unadjusted", seed=11) > ALPHA + SLACK


def test_with_one_configuration_the_recommendation_is_the_decision() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        b = int(rng.integers(0, 40))
        c = int(rng.integers(0, 20))
        verdict, t = decide_paired(b, c, N, margin=MARGIN, alpha=ALPHA)
        tested = holm_family([float(stats.norm.cdf(t))], ALPHA)
        assert tested[0].go == (verdict == "GO")


def test_holm_matches_statsmodels_and_fixed_sequence_stops_at_the_first_failure() -> None:
    p = [0.004, 0.03, 0.012, 0.2]
    tested = holm_family(p, ALPHA)
    reject, adjusted, _, _ = multipletests(p, alpha=ALPHA, method="holm")
    assert [t.go for t in tested] == list(reject)
    assert [t.adjusted_p for t in tested] == pytest.approx(list(adjusted))
    # most expensive first: 0.004 (cost 4) passes, 0.2 (cost 3) fails, so 0.012 and 0.03 are never GO
    sequence = fixed_sequence(p, [4.0, 1.0, 2.0, 3.0], ALPHA)
    assert [t.go for t in sequence] == [True, False, False, False]
    assert recommend(sequence, [4.0, 1.0, 2.0, 3.0]) == 0
    assert [t.go for t in tested] == [True, False, True, False]
    assert recommend(tested, [4.0, 1.0, 2.0, 3.0]) == 2  # Holm passes 0.004 and 0.012; 0.012 is cheaper
