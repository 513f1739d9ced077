"""Group-sequential boundaries against stats-spec §4.1 (values checked against gsDesign there)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from scipy import integrate

from evalkit.stats import sequential
from evalkit.stats.sequential import (
    group_sequential_bounds,
    ld_obf_spending,
    look_schedule,
    looks_every,
    nominal_alpha,
)


def test_spending_function_endpoints_and_monotone() -> None:
    t = np.linspace(0.05, 1.0, 20)
    spent = ld_obf_spending(t, 0.05)
    assert spent[-1] == pytest.approx(0.05, abs=1e-12)
    assert np.all(np.diff(spent) > 0)
    assert ld_obf_spending(0.2, 0.05) == pytest.approx(1.17e-5, rel=0.01)  # = α_1 of the K=5 plan
    with pytest.raises(ValueError):
        ld_obf_spending([0.0, 1.0], 0.05)


def test_bounds_match_gsdesign_alpha_0025() -> None:
    c = group_sequential_bounds(np.arange(1, 6) / 5, alpha=0.025)
    np.testing.assert_allclose(c, [4.8769, 3.3570, 2.6803, 2.2898, 2.0310], atol=1e-3)


def test_bounds_k5_alpha_005_and_nominal_levels() -> None:
    c = group_sequential_bounds([0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(c, [4.2292, 2.8881, 2.2981, 1.9618, 1.7397], atol=1e-4)
    np.testing.assert_allclose(nominal_alpha(c), [1.17e-5, 0.00194, 0.0108, 0.0249, 0.0410], rtol=0.02)
    assert isinstance(nominal_alpha(c[-1]), float)
    assert nominal_alpha(1.7397) == pytest.approx(0.0410, rel=0.01)


def test_bounds_irregular_looks() -> None:
    c = group_sequential_bounds(np.array([120, 250, 380, 500]) / 500)
    np.testing.assert_allclose(c, [3.8336, 2.5394, 1.9985, 1.7231], atol=1e-4)


def test_bounds_k10_first_and_last() -> None:
    c = group_sequential_bounds(np.arange(1, 11) / 10)
    assert len(c) == 10
    assert c[0] == pytest.approx(6.0879, abs=1e-4)
    assert c[1] == pytest.approx(4.2292, abs=1e-4)  # ≈ K=5's c_1: the t=0.1 look spends almost nothing
    assert c[-1] == pytest.approx(1.7949, abs=1e-4)
    assert all(a > b for a, b in pairwise(c))


def test_single_look_is_fixed_sample_test() -> None:
    assert group_sequential_bounds([1.0], 0.05)[0] == pytest.approx(1.6449, abs=1e-4)


def test_bounds_are_cached_and_returned_as_fresh_lists() -> None:
    a = group_sequential_bounds([0.2, 0.4, 0.6, 0.8, 1.0])
    hits = sequential._bounds_cached.cache_info().hits
    a.append(99.0)
    b = group_sequential_bounds((0.2, 0.4, 0.6000000000000001, 0.8, 1.0))  # float noise: same key
    assert sequential._bounds_cached.cache_info().hits == hits + 1
    assert len(b) == 5


@pytest.mark.parametrize(
    "fractions",
    [[], [0.5, 0.5, 1.0], [0.6, 0.4, 1.0], [0.0, 1.0], [0.5, 1.2]],
)
def test_bounds_reject_bad_plans(fractions: list[float]) -> None:
    with pytest.raises(ValueError):
        group_sequential_bounds(fractions)


def test_bounds_reject_bad_alpha() -> None:
    with pytest.raises(ValueError):
        group_sequential_bounds([0.5, 1.0], alpha=0.0)


def test_simpson_weights_match_scipy() -> None:
    x = np.linspace(-3.0, 2.0, 101)
    f = np.exp(-x * x / 2)
    assert sequential._simpson_weights(x) @ f == pytest.approx(integrate.simpson(f, x=x), rel=1e-12)


def test_look_schedule() -> None:
    assert look_schedule(500) == [100, 200, 300, 400, 500]
    assert look_schedule(333, 5) == [67, 134, 200, 267, 333]
    assert look_schedule(500, 10)[0] == 50
    assert look_schedule(3, 5) == [1, 2, 3]  # duplicates dropped
    assert look_schedule(7, 1) == [7]
    with pytest.raises(ValueError):
        look_schedule(0)


def test_looks_every() -> None:
    assert looks_every(500) == [100, 200, 300, 400, 500]
    assert looks_every(450) == [100, 200, 300, 400, 450]
    assert looks_every(80) == [80]
    assert looks_every(100) == [100]
    assert looks_every(250, every=50) == [50, 100, 150, 200, 250]
    with pytest.raises(ValueError):
        looks_every(100, every=0)
