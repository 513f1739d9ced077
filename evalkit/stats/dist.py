"""The few ``scipy.stats`` distribution functions a run needs, from the ``scipy.special`` ufuncs that
``scipy.stats`` itself calls.

``import scipy.stats`` costs about a second (it builds every distribution's docstring and imports
``scipy.optimize``, ``scipy.spatial``, …); the functions here are what ``norm``, ``binom``, ``beta`` and
``binomtest`` evaluate after checking their arguments (SciPy 1.17: ``_continuous_distns``,
``_discrete_distns``, ``_distn_infrastructure``): ``ndtr``/``ndtri`` for the normal, the Boost ufuncs
``_binom_cdf``/``_binom_sf``/``_binom_pmf`` for the binomial (after ``floor``, clipped to [0, 1]),
``_beta_ppf``/``betainccinv`` for the beta, with the same results outside the support and for invalid
shapes (NaN). ``tests/test_dist.py`` checks every function bit for bit against ``scipy.stats`` over
many cases, edges included; like ``scipy.stats``, scalars in give numpy scalars out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from evalkit._lazy import lazy

_sc = lazy("scipy.special")
_scu = lazy("scipy.special._ufuncs")

__all__ = ["beta_isf", "beta_ppf", "binom_cdf", "binom_pmf", "binom_sf", "binomtest_pvalue", "norm_cdf",
           "norm_ppf", "norm_sf"]


def _done(output: np.ndarray) -> Any:
    return output[()] if output.ndim == 0 else output


def _floats(x: ArrayLike) -> np.ndarray:
    arr = np.asarray(x)
    return np.asarray(arr - 0, dtype=np.promote_types(arr.dtype, np.float64))


# -- the standard normal (support (-inf, inf), no shape parameters) ----------------------------------
def norm_cdf(x: ArrayLike) -> Any:
    """``scipy.stats.norm.cdf``: ``ndtr`` on the open support, 1 at +inf, 0 at -inf, NaN for NaN."""
    x_arr = _floats(x)
    output = np.zeros(x_arr.shape, x_arr.dtype)
    output[np.isnan(x_arr)] = np.nan
    output[x_arr >= np.inf] = 1.0
    inside = (x_arr > -np.inf) & (x_arr < np.inf)
    if np.any(inside):
        output[inside] = _sc.ndtr(x_arr[inside])
    return _done(output)


def norm_sf(x: ArrayLike) -> Any:
    """``scipy.stats.norm.sf``: ``ndtr(-x)`` on the open support, 1 at -inf, 0 at +inf."""
    x_arr = _floats(x)
    output = np.zeros(x_arr.shape, x_arr.dtype)
    output[np.isnan(x_arr)] = np.nan
    output[x_arr <= -np.inf] = 1.0
    inside = (x_arr > -np.inf) & (x_arr < np.inf)
    if np.any(inside):
        output[inside] = _sc.ndtr(-x_arr[inside])
    return _done(output)


def norm_ppf(q: ArrayLike) -> Any:
    """``scipy.stats.norm.ppf``: ``ndtri`` on (0, 1), ∓inf at 0 and 1, NaN elsewhere."""
    q_arr = np.asarray(q)
    output = np.full(q_arr.shape, np.nan)
    output[q_arr == 0] = -np.inf
    output[q_arr == 1] = np.inf
    inside = (q_arr > 0) & (q_arr < 1)
    if np.any(inside):
        output[inside] = _sc.ndtri(q_arr[inside]) * 1.0 + 0.0
    return _done(output)


# -- the beta distribution (support [0, 1], shapes a, b > 0) -----------------------------------------
def _beta_inverse(q: ArrayLike, a: ArrayLike, b: ArrayLike, *, upper: bool) -> Any:
    q_arr, a_arr, b_arr = np.broadcast_arrays(np.asarray(q), np.asarray(a), np.asarray(b))
    valid = (a_arr > 0) & (b_arr > 0)
    output = np.full(q_arr.shape, np.nan)
    output[valid & (q_arr == (1 if upper else 0))] = 0.0
    output[valid & (q_arr == (0 if upper else 1))] = 1.0
    inside = valid & (q_arr > 0) & (q_arr < 1)
    if np.any(inside):
        ufunc = _sc.betainccinv if upper else _scu._beta_ppf
        values = (ufunc(a_arr[inside], b_arr[inside], q_arr[inside]) if upper
                  else ufunc(q_arr[inside], a_arr[inside], b_arr[inside]))
        output[inside] = values * 1.0 + 0.0
    return _done(output)


def beta_ppf(q: ArrayLike, a: ArrayLike, b: ArrayLike) -> Any:
    """``scipy.stats.beta.ppf``: Boost's ``_beta_ppf`` on (0, 1); 0 at q = 0, 1 at q = 1; NaN for bad a, b."""
    return _beta_inverse(q, a, b, upper=False)


def beta_isf(q: ArrayLike, a: ArrayLike, b: ArrayLike) -> Any:
    """``scipy.stats.beta.isf``: ``betainccinv`` on (0, 1); 1 at q = 0, 0 at q = 1; NaN for bad a, b."""
    return _beta_inverse(q, a, b, upper=True)


# -- the binomial (support 0 … n, n a non-negative integer, p in [0, 1]) -----------------------------
def _binom_args(k: ArrayLike, n: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                   np.ndarray]:
    k_arr, n_arr, p_arr = np.broadcast_arrays(np.asarray(k), np.asarray(n), np.asarray(p))
    valid = (n_arr >= 0) & (n_arr == np.floor(n_arr)) & (p_arr >= 0) & (p_arr <= 1)
    return k_arr, n_arr, p_arr, valid


def _binom_tail(tail: Any, k: ArrayLike, n: ArrayLike, p: ArrayLike, *, below: float, above: float) -> Any:
    """SciPy's discrete tail: ``tail(floor(k))`` for 0 ≤ k < n, ``below`` for k < 0, ``above`` for k ≥ n,
    NaN for invalid arguments or a NaN k."""
    k_arr, n_arr, p_arr, valid = _binom_args(k, n, p)
    output = np.zeros(k_arr.shape, "d")
    output[k_arr >= n_arr] = above
    output[k_arr < 0] = below
    output[~valid | np.isnan(k_arr)] = np.nan
    inside = valid & (k_arr >= 0) & (k_arr < n_arr) & np.isfinite(k_arr)
    if np.any(inside):
        output[inside] = np.clip(tail(np.floor(k_arr[inside]), n_arr[inside], p_arr[inside]), 0, 1)
    return _done(output)


def binom_cdf(k: ArrayLike, n: ArrayLike, p: ArrayLike) -> Any:
    """``scipy.stats.binom.cdf``: ``_binom_cdf(floor(k))`` for 0 ≤ k < n, 1 for k ≥ n, 0 below 0."""
    return _binom_tail(_scu._binom_cdf, k, n, p, below=0.0, above=1.0)


def binom_sf(k: ArrayLike, n: ArrayLike, p: ArrayLike) -> Any:
    """``scipy.stats.binom.sf``: ``_binom_sf(floor(k))`` for 0 ≤ k < n, 1 below 0, 0 for k ≥ n."""
    return _binom_tail(_scu._binom_sf, k, n, p, below=1.0, above=0.0)


def binom_pmf(k: ArrayLike, n: ArrayLike, p: ArrayLike) -> Any:
    """``scipy.stats.binom.pmf``: ``_binom_pmf(k)`` at the integers 0 … n, 0 elsewhere."""
    k_arr, n_arr, p_arr, valid = _binom_args(k, n, p)
    output = np.zeros(k_arr.shape, "d")
    output[~valid | np.isnan(k_arr)] = np.nan
    inside = valid & (k_arr >= 0) & (k_arr <= n_arr) & (np.floor(k_arr) == k_arr)
    if np.any(inside):
        output[inside] = np.clip(_scu._binom_pmf(k_arr[inside], n_arr[inside], p_arr[inside]), 0, 1)
    return _done(output)


def binomtest_pvalue(k: int, n: int, p: float, alternative: str) -> float:
    """``scipy.stats.binomtest(k, n, p, alternative).pvalue`` for the one-sided alternatives."""
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"binomtest needs 0 <= k <= n and n >= 1, got k={k}, n={n}")
    if not 0 <= p <= 1:
        raise ValueError(f"p ({p}) must be in range [0,1]")
    if alternative == "less":
        return binom_cdf(k, n, p)
    if alternative == "greater":
        return binom_sf(k - 1, n, p)
    raise ValueError(f"alternative must be 'less' or 'greater', got {alternative!r}")
