"""evalkit.stats.dist gives scipy.stats' norm, binom, beta and binomtest numbers, bit for bit."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from evalkit.stats import dist


def same(mine: object, theirs: object) -> bool:
    a, b = np.asarray(mine), np.asarray(theirs)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes() and (
        type(mine) is type(theirs))


POINTS = np.concatenate([np.linspace(-40, 40, 801), [-np.inf, np.inf, np.nan, -0.0, 0.0, 1e-300, -1e-300,
                                                     8.29, 37.5, -37.5]])
PROBS = np.concatenate([np.linspace(0, 1, 1001), [1e-300, 1e-17, 1 - 1e-16, np.nan, -0.1, 1.1,
                                                  0.025, 0.05, 0.1, 0.95, 0.975]])


def test_normal_the_same_bits_as_scipy() -> None:
    assert same(dist.norm_cdf(POINTS), stats.norm.cdf(POINTS))
    assert same(dist.norm_sf(POINTS), stats.norm.sf(POINTS))
    assert same(dist.norm_ppf(PROBS), stats.norm.ppf(PROBS))
    for x in POINTS[::7]:
        assert same(dist.norm_cdf(float(x)), stats.norm.cdf(float(x)))
        assert same(dist.norm_sf(float(x)), stats.norm.sf(float(x)))
    for q in PROBS[::7]:
        assert same(dist.norm_ppf(float(q)), stats.norm.ppf(float(q)))
    assert same(dist.norm_ppf(1 - 0.05), stats.norm.ppf(1 - 0.05))


def test_binomial_the_same_bits_as_scipy() -> None:
    for n in (0, 1, 2, 7, 20, 100, 468, 500, 1000, 3000, 2.5, -1):
        k = np.concatenate([np.arange(-3, int(max(n, 0)) + 4), [-np.inf, np.inf, np.nan, 2.5]])
        for p in (0.0, 1e-9, 0.01, 0.05, 0.1, 0.5, 0.9, 0.95, 0.99, 1.0, 1.5, np.nan):
            assert same(dist.binom_cdf(k, n, p), stats.binom.cdf(k, n, p)), (n, p)
            assert same(dist.binom_sf(k, n, p), stats.binom.sf(k, n, p)), (n, p)
            assert same(dist.binom_pmf(k, n, p), stats.binom.pmf(k, n, p)), (n, p)
    for k, n, p in itertools.product((0, 3, 19, 20, 21, 499), (20, 500), (0.01, 0.5, 0.99)):
        assert same(dist.binom_cdf(k, n, p), stats.binom.cdf(k, n, p))
        assert same(dist.binom_sf(k, n, p), stats.binom.sf(k, n, p))
        assert same(dist.binom_pmf(k, n, p), stats.binom.pmf(k, n, p))
    big = np.arange(0, 1001)
    assert same(dist.binom_pmf(big[::3], 1000, 0.97), stats.binom.pmf(big[::3], 1000, 0.97))


def test_beta_the_same_bits_as_scipy() -> None:
    qs = np.array([0.0, 1e-12, 0.005, 0.025, 0.05, 0.1, 0.5, 0.9, 0.95, 0.975, 1.0, np.nan, -0.5, 2.0])
    for n in (1, 2, 20, 300, 468, 1000):
        for count in sorted({0, 1, n // 3, n - 1, n}):
            for q in qs:
                a, b = count, n - count + 1
                assert same(dist.beta_ppf(q, a, b), stats.beta.ppf(q, a, b)), (q, a, b)
                assert same(dist.beta_isf(q, a + 1, b - 1), stats.beta.isf(q, a + 1, b - 1)), (q, a, b)
    k = np.arange(0, 51)
    assert same(dist.beta_ppf(0.05, k, 51 - k), stats.beta.ppf(0.05, k, 51 - k))
    assert same(dist.beta_ppf(0.95, k + 1, 50 - k), stats.beta.ppf(0.95, k + 1, 50 - k))


def test_binomtest_the_same_bits_as_scipy() -> None:
    for n in (1, 5, 20, 300, 500):
        for x in sorted({0, 1, n // 2, n - 1, n}):
            for p in (0.0, 0.5, 0.9, 0.95, 0.99, 1.0):
                for alternative in ("less", "greater"):
                    theirs = stats.binomtest(x, n, p, alternative=alternative).pvalue
                    assert same(dist.binomtest_pvalue(x, n, p, alternative), theirs), (x, n, p, alternative)
    with pytest.raises(ValueError):
        dist.binomtest_pvalue(5, 3, 0.5, "less")


def test_importing_them_does_not_import_scipy_stats() -> None:
    code = ("import sys; from evalkit.stats import dist; dist.binom_cdf(3, 10, 0.5); dist.norm_ppf(0.9); "
            "dist.beta_ppf(0.05, 3, 8); print('scipy.stats' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
