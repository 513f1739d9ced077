"""Group decisions as one family: the "NO-GO inside a group" alarm keeps its error rate (seeded simulation).
"""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.datasets import Sample
from evalkit.scoring.answers import Answer
from evalkit.scoring.samples import ScoredSample
from evalkit.stats.groups import decide_families

MARGIN, ALPHA = 0.05, 0.05


def _rows(
    rng: np.random.Generator, n: int, loss: float, group: str, p_only_candidate: float = 0.05
) -> list[ScoredSample]:
    """Paired gold-mode outcomes with true accuracy gap ``loss`` (reference − candidate)."""
    p_only_reference = p_only_candidate + loss
    p_both = 0.55
    cells = rng.choice(
        4,
        size=n,
        p=[p_both, p_only_reference, p_only_candidate, 1 - p_both - p_only_reference - p_only_candidate],
    )
    rows = []
    for index, cell in enumerate(cells):
        ref_right, cand_right = cell in (0, 1), cell in (0, 2)
        sample = Sample(
            id=f"{group}-{index}", text="t", label="a", fields={}, input_hash="h", segments={"g": group}
        )
        rows.append(
            ScoredSample(
                sample=sample,
                candidate=Answer(outcome="ok", label="a" if cand_right else "b"),
                reference=Answer(outcome="ok", label="a" if ref_right else "b"),
            )
        )
    return rows


def _alarm_rate(loss: float, *, runs: int, groups: int = 9, n: int = 60) -> tuple[float, float]:
    """(share of runs with any family NO-GO, share with any unadjusted NO-GO) when every group's true loss
    is ``loss``."""
    rng = np.random.default_rng(20261201)
    family = unadjusted = 0
    for _ in range(runs):
        dimension = {f"g{k}": _rows(rng, n, loss, f"g{k}") for k in range(groups)}
        decided = decide_families({"segment": dimension}, margin=MARGIN, alpha=ALPHA, min_size=30)["segment"]
        family += any(g.verdict == "NO-GO" for g in decided.values())
        unadjusted += any(g.exploratory_verdict == "NO-GO" for g in decided.values())
    return family / runs, unadjusted / runs


def test_the_group_alarm_at_the_margin_stays_within_alpha() -> None:
    family, unadjusted = _alarm_rate(MARGIN, runs=300)
    assert family <= ALPHA + 0.02  # Holm: the family-wise rate is at most α (+ Monte Carlo error)
    assert unadjusted > 2 * ALPHA  # testing each group alone raises the alarm far too often


def test_groups_near_the_reference_rarely_alarm() -> None:
    family, unadjusted = _alarm_rate(0.02, runs=100)
    assert family <= ALPHA
    assert unadjusted >= family


def test_a_truly_bad_group_is_still_found_and_small_groups_get_no_verdict() -> None:
    rng = np.random.default_rng(7)
    dimension = {
        "fine": _rows(rng, 200, 0.0, "fine"),
        "bad": _rows(rng, 200, 0.30, "bad"),
        "tiny": _rows(rng, 3, 0.30, "tiny"),
    }
    decided = decide_families({"segment": dimension}, margin=MARGIN, alpha=ALPHA, min_size=30)["segment"]
    assert decided["bad"].verdict == "NO-GO" and decided["bad"].p_nogo_adjusted is not None
    assert decided["fine"].verdict != "NO-GO"
    assert decided["tiny"].verdict is None and "too few to test" in decided["tiny"].note
    assert decided["tiny"].n == 3


def test_holm_matches_statsmodels() -> None:
    from statsmodels.stats.multitest import multipletests

    from evalkit.stats.groups import holm

    rng = np.random.default_rng(3)
    for _ in range(50):
        p = list(rng.uniform(0, 0.2, size=int(rng.integers(1, 12))))
        assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))
