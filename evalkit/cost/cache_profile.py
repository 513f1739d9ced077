"""Prompt caching as it behaves in production, not as if every request hit.

A cached prefix lives for its TTL (5 minutes or 1 hour) from the start of the last request that wrote or
read it, and every hit refreshes it for free. So a request pays a cache *write* (1.25× or 2× the input
price) exactly when no request with the same prefix started within the TTL before it, and a *read*
(0.1×) otherwise. With requests arriving as a Poisson process of rate λ(t), the chance that a request at
t misses is ``exp(−∫ λ over [t − TTL, t])``; integrated over the day's profile (``production.
hourly_share``) that gives the expected hit rate, the writes per day and which TTL is cheaper. A test
checks it against a direct simulation of Poisson arrivals.

Production that sends batches every C minutes (``production.batch_every_minutes``) instead finds the
cache cold at each batch unless C is within the TTL, and inside a batch hits are best effort (the API
documents 30–98%; ``production.batch_cache_hit_rate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from evalkit._typed import Typed
from evalkit.config import PricingTable
from evalkit.cost.prices import MeanUsage, discount, price_tokens

TTL_SECONDS: dict[str, float] = {"5m": 300.0, "1h": 3600.0}
_DAY = 86_400.0
_BINS = 8_640  # 10-second resolution over the day


def _rates(daily_requests: float, hourly_share: Sequence[float] | None) -> np.ndarray:
    """Arrival rate (requests per second) in each 10-second bin of the day."""
    shares = np.asarray(hourly_share if hourly_share is not None else [1.0] * 24, dtype=float)
    shares = shares / shares.sum()
    per_hour = daily_requests * shares / 3600.0
    return np.repeat(per_hour, _BINS // 24)


def realtime_miss_rate(daily_requests: float, ttl_s: float, hourly_share: Sequence[float] | None = None
                       ) -> float:
    """Expected share of requests that find the prefix expired (Poisson arrivals; the day repeats)."""
    if daily_requests <= 0:
        return 1.0
    rate = _rates(daily_requests, hourly_share)
    width = _DAY / _BINS
    window = int(round(ttl_s / width))
    mass = rate * width  # expected arrivals per bin
    # Expected arrivals in the TTL before a request in each bin (yesterday wraps around): on average the
    # window covers half of the request's own bin and half of the bin it starts in.
    cyclic = np.concatenate([mass, mass])
    cumulative = np.concatenate([[0.0], np.cumsum(cyclic)])
    end = np.arange(len(mass)) + len(mass)
    before = cumulative[end] - cumulative[end - window] - cyclic[end - window] / 2 + mass / 2
    misses = float(np.sum(mass * np.exp(-before)))
    return min(1.0, misses / float(mass.sum()))


def batch_miss_rate(daily_requests: float, every_minutes: float, ttl_s: float, hit_rate: float) -> float:
    """Share of requests that write the prefix when production sends a batch every ``every_minutes``."""
    per_batch = max(1.0, daily_requests * every_minutes / 1440.0)
    cold_start = 1.0 if every_minutes * 60.0 > ttl_s else 0.0
    misses = cold_start + (per_batch - cold_start) * (1.0 - hit_rate)
    return min(1.0, misses / per_batch)


class CachingOption(Typed):
    """One way to serve one model's requests: no caching, or caching with a TTL, and what it costs."""

    ttl: Literal["none", "5m", "1h"]
    hit_rate: float  # share of requests that read the prefix
    writes_per_day: float
    per_request_usd: float
    per_month_usd: float


class ModelCaching(Typed):
    """The caching options of one model's share of production traffic."""

    role: str
    model: str
    daily_requests: float
    prefix_tokens: float
    options: list[CachingOption]
    cheapest: str  # the ttl of the cheapest option
    idealised_per_request_usd: float  # what the "every request hits" projection assumes

    def option(self, ttl: str) -> CachingOption:
        return next(option for option in self.options if option.ttl == ttl)


class CachingProjection(Typed):
    assumption: str
    models: list[ModelCaching]


def model_caching(pricing: PricingTable, usage: MeanUsage, *, role: str, daily_requests: float,
                  days_per_month: int, hourly_share: Sequence[float] | None,
                  batch_every_minutes: float | None,
                  batch_hit_rate: float) -> ModelCaching:
    """Every TTL for one model's traffic, priced with the expected hits and writes."""
    batch = batch_every_minutes is not None
    rates = pricing.price_for(usage.model).for_prompt(int(usage.input_tokens))
    factor = discount(pricing, batch=batch)
    prefix = usage.prefix_tokens
    rest = dict(input=usage.input_tokens - prefix, output=usage.output_tokens, factor=factor)
    options = [CachingOption(
        ttl="none", hit_rate=0.0, writes_per_day=0.0,
        per_request_usd=(cost := price_tokens(rates, input=usage.input_tokens, output=usage.output_tokens,
                                              factor=factor).total),
        per_month_usd=cost * daily_requests * days_per_month)]
    for ttl, seconds in TTL_SECONDS.items():
        if prefix <= 0:
            break
        if batch_every_minutes is not None:
            miss = batch_miss_rate(daily_requests, batch_every_minutes, seconds, batch_hit_rate)
        else:
            miss = realtime_miss_rate(daily_requests, seconds, hourly_share)
        writes = {"cache_write_5m" if ttl == "5m" else "cache_write_1h": miss * prefix}
        cost = price_tokens(rates, cache_read=(1 - miss) * prefix, **writes, **rest).total
        options.append(CachingOption(ttl=ttl, hit_rate=1 - miss, writes_per_day=miss * daily_requests,
                                     per_request_usd=cost,
                                     per_month_usd=cost * daily_requests * days_per_month))
    idealised = price_tokens(rates, cache_read=prefix, **rest).total
    cheapest = min(options, key=lambda option: option.per_request_usd).ttl
    return ModelCaching(role=role, model=usage.model, daily_requests=daily_requests, prefix_tokens=prefix,
                        options=options, cheapest=cheapest, idealised_per_request_usd=idealised)


def describe_assumption(*, daily_requests: int, hourly_share: Sequence[float] | None,
                        batch_every_minutes: float | None, batch_hit_rate: float) -> str:
    if batch_every_minutes is not None:
        return (f"{daily_requests:,} requests a day sent as a batch every {batch_every_minutes:g} minutes; "
                f"inside a batch {100 * batch_hit_rate:.0f}% of requests hit a warm prefix (best effort), "
                "and "
                "a batch finds the cache cold when the previous one is older than the TTL")
    spread = "evenly over the day" if hourly_share is None else "by the task's hourly_share profile"
    peak = "" if hourly_share is None else \
        f" (busiest hour {100 * max(hourly_share) / sum(hourly_share):.0f}% of the day's requests)"
    return (f"{daily_requests:,} requests a day arriving at random (Poisson), spread {spread}{peak}; a "
            "request writes the prefix when no request with the same prefix started within the TTL before "
            "it, and reads it otherwise (each hit refreshes the TTL)")
