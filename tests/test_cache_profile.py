"""The production caching model against a direct simulation of Poisson arrivals with a TTL cache, and the
priced options it yields (a cold cache between sparse requests makes the 1-hour TTL or no caching cheaper)."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.config import load_settings
from evalkit.cost.cache_profile import TTL_SECONDS, batch_miss_rate, model_caching, realtime_miss_rate
from evalkit.cost.prices import MeanUsage

BUSINESS = [0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1, 3, 6, 8, 8, 7, 6, 7, 8, 8, 7, 5, 3, 2, 1, 0.5, 0.3, 0.2]


def _simulated_miss_rate(daily: float, ttl: float, shares: list[float] | None, days: int, seed: int) -> float:
    """Arrivals as a Poisson process (hour by hour); a request misses when the cache entry, refreshed by
    every request, has expired: the gap since the previous request exceeds the TTL."""
    rng = np.random.default_rng(seed)
    weights = np.asarray(shares if shares is not None else [1.0] * 24, dtype=float)
    weights /= weights.sum()
    times = []
    for day in range(days):
        for hour, weight in enumerate(weights):
            count = rng.poisson(daily * weight)
            times.append(day * 86_400 + hour * 3600 + rng.uniform(0, 3600, count))
    arrivals = np.sort(np.concatenate(times))
    return float(np.mean(np.diff(arrivals) > ttl))


@pytest.mark.parametrize(("daily", "ttl", "shares"), [
    (500, "5m", None), (2000, "5m", BUSINESS), (200, "5m", BUSINESS), (200, "1h", BUSINESS), (40, "1h", None),
])
def test_the_expected_miss_rate_matches_a_simulation_of_poisson_arrivals(daily: int, ttl: str,
                                                                        shares: list[float] | None) -> None:
    days = max(20, 40_000 // daily)
    simulated = _simulated_miss_rate(daily, TTL_SECONDS[ttl], shares, days, seed=daily)
    expected = realtime_miss_rate(daily, TTL_SECONDS[ttl], shares)
    se = (expected * (1 - expected) / (daily * days)) ** 0.5
    assert abs(simulated - expected) <= 4 * se + 1e-4, (simulated, expected)


def test_steady_traffic_always_hits_and_a_trickle_always_misses() -> None:
    assert realtime_miss_rate(20_000, 300) < 1e-9
    assert realtime_miss_rate(24, 300) > 0.9  # one request an hour outlives a 5-minute entry


def test_batches_further_apart_than_the_ttl_find_the_cache_cold() -> None:
    warm = batch_miss_rate(1000, 30, TTL_SECONDS["1h"], hit_rate=0.5)
    cold = batch_miss_rate(1000, 30, TTL_SECONDS["5m"], hit_rate=0.5)
    per_batch = 1000 * 30 / 1440
    assert warm == pytest.approx(0.5)
    assert cold == pytest.approx((1 + (per_batch - 1) * 0.5) / per_batch)


def test_sparse_traffic_makes_the_one_hour_ttl_cheaper_and_dense_traffic_does_not_care() -> None:
    pricing = load_settings().pricing
    usage = MeanUsage(model="claude-sonnet-5-5", input_tokens=3000, prefix_tokens=2500, output_tokens=200)
    common = dict(days_per_month=30, hourly_share=BUSINESS, batch_every_minutes=None, batch_hit_rate=0.3)
    sparse = model_caching(pricing, usage, role="reference", daily_requests=150, **common)  # type: ignore[arg-type]
    assert sparse.option("5m").hit_rate < sparse.option("1h").hit_rate
    assert sparse.cheapest == "1h"
    assert sparse.option("5m").per_request_usd > sparse.idealised_per_request_usd
    dense = model_caching(pricing, usage, role="reference", daily_requests=50_000, **common)  # type: ignore[arg-type]
    assert dense.option("5m").hit_rate > 0.999
    assert dense.option("5m").per_request_usd == pytest.approx(dense.idealised_per_request_usd, rel=1e-3)
