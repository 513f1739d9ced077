"""Exact unconditional p-values for the paired accuracy gap at a margin — for small groups.

Tango's score test is the run's decision rule and keeps its GO error at α for a run's sample sizes. In a
label or segment of 30–100 samples its NO-GO side is anti-conservative (P(NO-GO) at the margin reaches
6–9% at n = 60), and Holm's correction is only as valid as the p-values it adjusts. So group decisions
use exact unconditional p-values (Berger & Boos style, without the confidence-interval restriction): the
Tango statistic orders the outcomes, and the p-value is the largest tail probability over the nuisance
parameter on the null boundary Δ = δ — valid at every n by construction. No library offers this test, so
it is computed here by enumerating the trinomial of discordant pairs on a grid of the nuisance parameter.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from evalkit._lazy import lazy
from evalkit.stats.decision import clopper_pearson_interval, tango_statistic

_special = lazy("scipy.special")

#: Points of the nuisance-parameter grid (P(only the candidate is right) on the null boundary).
GRID = 25
#: Berger & Boos: the supremum is taken over a 1 − γ confidence interval of the nuisance parameter, and γ
#: is added to the p-value — still an exact (valid) test, and much cheaper than the whole boundary.
GAMMA = 0.001
#: Above this many samples the enumeration (n²/2 outcomes) is not worth it: Tango's asymptotic p-values
#: are used, whose NO-GO error at the margin is 5.0–5.7% from n = 200 and tends to α as n grows.
MAX_EXACT_N = 1000
#: Outcomes per block of the tail sum (a block's temporaries: TAIL_BLOCK × GRID × 8 bytes each, ~6 MB).
TAIL_BLOCK = 32_768


@lru_cache(maxsize=4)  # up to n²/2 outcomes × 4 arrays each (16 MB at n = 1,000): keep a few, not 32
def _outcomes(n: int, margin: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every (b, c) with b + c ≤ n, Tango's statistic there, and the log multinomial coefficient."""
    b, c = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    keep = b + c <= n
    b, c = b[keep].astype(float), c[keep].astype(float)
    t = np.asarray(tango_statistic(b, c, n, margin), dtype=float)
    gammaln = _special.gammaln
    coefficient = gammaln(n + 1) - gammaln(b + 1) - gammaln(c + 1) - gammaln(n - b - c + 1)
    return b, c, t, coefficient


def exact_paired_pvalues(b: int, c: int, n: int, margin: float) -> tuple[float, float]:
    """(p for GO: H0 Δ ≥ δ, p for NO-GO: H0 Δ ≤ δ), Δ = P(only the reference right) − P(only the
    candidate right), exact at any n (supremum over the nuisance parameter on Δ = δ)."""
    if n == 0:
        return 1.0, 1.0
    bs, cs, t, coefficient = _outcomes(n, round(margin, 12))
    observed = float(tango_statistic(b, c, n, margin))
    low, high = clopper_pearson_interval(c, n, confidence=1 - GAMMA)
    grid_c = np.linspace(low, min(high, (1.0 - margin) / 2.0), GRID) if low < (1.0 - margin) / 2.0 else \
        np.array([(1.0 - margin) / 2.0])
    grid_b = grid_c + margin
    grid_rest = np.clip(1.0 - grid_b - grid_c, 0.0, None)

    def tail(mask: np.ndarray) -> float:
        """The largest probability of the outcomes in ``mask`` over the null boundary. Summed in blocks of
        outcomes: at n = 1,000 one outcomes × grid matrix is 250k × 25 and its temporaries ~300 MB, which
        made a run's peak memory depend on its largest group rather than on its size."""
        if not mask.any():
            return 0.0
        chosen = np.flatnonzero(mask)
        total = np.zeros_like(grid_c)
        for start in range(0, chosen.size, TAIL_BLOCK):
            rows = chosen[start:start + TAIL_BLOCK]
            b_, c_ = bs[rows, None], cs[rows, None]
            log_p = (coefficient[rows, None] + _special.xlogy(b_, grid_b) + _special.xlogy(c_, grid_c)
                     + _special.xlogy(n - b_ - c_, grid_rest))
            total += np.exp(log_p).sum(axis=0)
        return float(total.max())

    return (min(tail(t <= observed + 1e-9) + GAMMA, 1.0),
            min(tail(t >= observed - 1e-9) + GAMMA, 1.0))
