"""evalkit.stats.roots.brentq finds scipy.optimize.brentq's roots, bit for bit."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
from scipy import optimize

from evalkit.stats.decision import tango_statistic
from evalkit.stats.dist import norm_ppf
from evalkit.stats.roots import brentq


def test_the_tango_interval_ends_are_scipys() -> None:
    rng = random.Random(22)
    eps = 1e-10
    checked = 0
    for _ in range(600):
        n = rng.choice([20, 50, 100, 300, 468, 500, 1000, 5000])
        b = rng.randint(0, n // 4)
        c = rng.randint(0, n // 4)
        z = float(norm_ppf(1 - (1 - rng.choice([0.8, 0.9, 0.95, 0.99])) / 2))
        estimate = (b - c) / n
        for sign, lo, hi in ((-1, -1 + eps, estimate), (1, estimate, 1 - eps)):
            def f(t: float, b: int = b, c: int = c, n: int = n, shift: float = sign * z) -> float:
                return tango_statistic(b, c, n, t) + shift

            try:
                theirs = optimize.brentq(f, lo, hi, xtol=1e-12)
            except ValueError:
                with pytest.raises(ValueError):
                    brentq(f, lo, hi, xtol=1e-12)
                continue
            assert brentq(f, lo, hi, xtol=1e-12).hex() == float(theirs).hex(), (b, c, n, z)
            checked += 1
    assert checked > 1000


@pytest.mark.parametrize("f, a, b", [
    (lambda x: x**2 - 2, 0.0, 3.0), (lambda x: math.cos(x) - x, -1.0, 2.0), (lambda x: x**3, -1.0, 0.5),
    (lambda x: math.exp(x) - 1e6, 0.0, 40.0), (lambda x: math.atan(x - 0.3) * 1e-9, -5.0, 5.0),
    (lambda x: 0.0 if x == 1.0 else x - 1.0, 1.0, 2.0), (lambda x: (x - 0.5) ** 5, 0.0, 1.0),
])
@pytest.mark.parametrize("xtol", [2e-12, 1e-6, 1e-3])
def test_other_functions_and_tolerances(f: Callable[[float], float], a: float, b: float, xtol: float) -> None:
    def outcome(solve: Callable[..., float]) -> str:
        try:
            return float(solve(f, a, b, xtol=xtol)).hex()
        except (ValueError, RuntimeError) as error:  # x**3 does not converge in 100 steps: both say so
            return f"{type(error).__name__}: {error}"

    assert outcome(brentq) == outcome(optimize.brentq)


def test_the_same_errors() -> None:
    with pytest.raises(ValueError, match="different signs"):
        brentq(lambda x: x * x + 1, -1.0, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        brentq(lambda x: math.nan, -1.0, 1.0)
    with pytest.raises(RuntimeError, match="converge"):
        brentq(lambda x: x - 0.123456789, -1.0, 1.0, maxiter=2)
    with pytest.raises(ValueError, match="xtol"):
        brentq(lambda x: x, -1.0, 1.0, xtol=0)
