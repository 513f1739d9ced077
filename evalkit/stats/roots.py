"""``scipy.optimize.brentq`` written out, step for step, so an interval's ends need no ``scipy.optimize``.

Importing ``scipy.optimize`` costs about 0.3 s (it brings ``scipy.sparse`` and the linear-algebra
stack) for one function of thirty lines of C (``scipy/optimize/Zeros/brentq.c``). This is that C code
in Python: the same float operations in the same order (IEEE doubles either way), the same tolerances
and the same errors, so the roots are the same bits — ``tests/test_roots.py`` checks it against
``scipy.optimize.brentq`` on the Tango interval ends and on other functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["brentq"]

XTOL = 2e-12
RTOL = 4 * 2.220446049250313e-16  # 4 · machine epsilon, scipy's smallest allowed rtol
MAXITER = 100


def _signbit(value: float) -> bool:
    return math.copysign(1.0, value) < 0


def brentq(f: Callable[[float], float], a: float, b: float, *, xtol: float = XTOL, rtol: float = RTOL,
           maxiter: int = MAXITER) -> float:
    """A root of ``f`` in [a, b] (f(a) and f(b) of opposite signs), as ``scipy.optimize.brentq``."""
    if xtol <= 0:
        raise ValueError(f"xtol too small ({xtol:g} <= 0)")
    if rtol < RTOL:
        raise ValueError(f"rtol too small ({rtol:g} < {RTOL:g})")

    def call(x: float) -> float:
        value = float(f(x))
        if math.isnan(value):
            raise ValueError(f"The function value at x={x} is NaN; solver cannot continue.")
        return value

    xpre, xcur = float(a), float(b)
    xblk = fblk = spre = scur = 0.0
    fpre, fcur = call(xpre), call(xcur)
    if fpre == 0:
        return xpre
    if fcur == 0:
        return xcur
    if _signbit(fpre) == _signbit(fcur):
        raise ValueError("f(a) and f(b) must have different signs")
    for _ in range(maxiter):
        if fpre != 0 and fcur != 0 and _signbit(fpre) != _signbit(fcur):
            xblk, fblk = xpre, fpre
            spre = scur = xcur - xpre
        if abs(fblk) < abs(fcur):
            xpre, xcur, xblk = xcur, xblk, xcur
            fpre, fcur, fblk = fcur, fblk, fcur
        delta = (xtol + rtol * abs(xcur)) / 2
        sbis = (xblk - xcur) / 2
        if fcur == 0 or abs(sbis) < delta:
            return xcur
        if abs(spre) > delta and abs(fcur) < abs(fpre):
            if xpre == xblk:  # interpolate
                stry = -fcur * (xcur - xpre) / (fcur - fpre)
            else:  # extrapolate
                dpre = (fpre - fcur) / (xpre - xcur)
                dblk = (fblk - fcur) / (xblk - xcur)
                stry = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
            limit = abs(spre) if abs(spre) < 3 * abs(sbis) - delta else 3 * abs(sbis) - delta
            if 2 * abs(stry) < limit:  # good short step
                spre, scur = scur, stry
            else:  # bisect
                spre = scur = sbis
        else:  # bisect
            spre = scur = sbis
        xpre, fpre = xcur, fcur
        if abs(scur) > delta:
            xcur += scur
        else:
            xcur += delta if sbis > 0 else -delta
        fcur = call(xcur)
    raise RuntimeError(f"Failed to converge after {maxiter} iterations.")
