"""Production cost projection: what the task would cost per day and month under each serving stack.

From the tokens measured in the run (mean per request and model), at the task's daily volume: the
seed's three stacks — always the reference, always the candidate, and the routed cascade (the candidate
always runs; the reference runs on escalations) — each with and without prompt caching and the batch
discount. With both, prompt caching is priced at the best-effort batch cache hit rate of the run's
estimate (the simulator's configured rate, or the conservative assumption for the real API).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evalkit._typed import Typed
from evalkit.config import PricingTable
from evalkit.cost.cache_profile import CachingProjection, describe_assumption, model_caching
from evalkit.cost.prices import MeanUsage, per_request_cost
from evalkit.scoring.samples import SampleResult


class ProjectionRow(Typed):
    stack: str  # "all_reference" | "all_candidate" | "routed" | "routed_held_out"
    caching: bool
    batch: bool
    per_request_usd: float
    per_day_usd: float
    per_month_usd: float
    saving_vs_baseline: float


class MeasuredUsage(Typed):
    model: str
    input_tokens: float
    prefix_tokens: float
    output_tokens: float


class Projection(Typed):
    available: bool
    why: str | None = None
    daily_requests: int | None = None
    days_per_month: int | None = None
    escalation_rate: float | None = None  # of the threshold that would ship, on the evaluated samples
    escalation_rate_held_out: float | None = None  # its 5-fold cross-fitted estimate on new traffic
    escalation_source: str | None = None
    measured: dict[str, MeasuredUsage] | None = None
    baseline: str | None = None
    rows: list[ProjectionRow] = []
    pricing_as_of: str | None = None
    #: The caching rows above assume every request hits; this models hits and writes per TTL from the
    #: production traffic profile (see :mod:`evalkit.cost.cache_profile`).
    caching_profile: CachingProjection | None = None
    #: Share of batch requests assumed to read the cached prefix in the "caching + batch" rows.
    batch_cache_hit_rate: float | None = None


def mean_usage(results: Sequence[SampleResult], role: str, *, proxy: bool = True) -> MeanUsage | None:
    """Mean tokens per request. Recorded answers (a log) carry no usage: their tokens are taken to be the
    other role's (same prompt), priced at this role's rates."""
    model = results[0].calls[role].request.model if results else ""
    usages = [response.usage for r in results if (response := r.calls[role].response) is not None
              and response.mode != "log"]
    if not usages:
        partner = "candidate" if role == "reference" else "reference"
        other = mean_usage(results, partner, proxy=False) if proxy else None
        return None if other is None else MeanUsage(model, other.input_tokens, other.prefix_tokens,
                                                    other.output_tokens)
    prefix = max((u.cache_read_input_tokens + u.cache_creation_input_tokens for u in usages), default=0)
    return MeanUsage(model=model, input_tokens=float(np.mean([u.total_input_tokens for u in usages])),
                     prefix_tokens=float(prefix),
                     output_tokens=float(np.mean([u.output_tokens for u in usages])))


def role_costs(results: Sequence[SampleResult], pricing: PricingTable) -> tuple[float, float]:
    """Mean USD per request of the candidate and the reference at real-time (production) rates, with
    caching when the run's requests had a cached prefix: the prices the routing analysis trades off."""
    out = []
    for role in ("candidate", "reference"):
        usage = mean_usage(results, role)
        out.append(per_request_cost(pricing, usage, caching=usage.prefix_tokens > 0, batch=False)
                   if usage else 0.0)
    return out[0], out[1]


def caching_profile(candidate: MeanUsage, reference: MeanUsage, pricing: PricingTable, *, daily_requests: int,
                    days_per_month: int, escalation_rate: float | None, hourly_share: Sequence[float] | None,
                    batch_every_minutes: float | None, batch_hit_rate: float) -> CachingProjection:
    """Hits, writes and the cheaper TTL for each model's share of production traffic."""
    common: dict[str, Any] = dict(days_per_month=days_per_month, hourly_share=hourly_share,
                                  batch_every_minutes=batch_every_minutes, batch_hit_rate=batch_hit_rate)
    models = [model_caching(pricing, candidate, role="candidate", daily_requests=daily_requests, **common),
              model_caching(pricing, reference, role="reference", daily_requests=daily_requests, **common)]
    if escalation_rate is not None and escalation_rate > 0:
        models.append(model_caching(pricing, reference, role="reference (escalations)",
                                    daily_requests=daily_requests * escalation_rate, **common))
    return CachingProjection(
        assumption=describe_assumption(daily_requests=daily_requests, hourly_share=hourly_share,
                                       batch_every_minutes=batch_every_minutes,
                                       batch_hit_rate=batch_hit_rate),
        models=models)


def project(results: Sequence[SampleResult], pricing: PricingTable, *, daily_requests: int,
            days_per_month: int, escalation_rate: float | None, escalation_source: str,
            escalation_rate_held_out: float | None = None, hourly_share: Sequence[float] | None = None,
            batch_every_minutes: float | None = None, batch_hit_rate: float = 0.3,
            batch_cache_hit_rate: float = 1.0) -> Projection:
    candidate, reference = mean_usage(results, "candidate"), mean_usage(results, "reference")
    if candidate is None or reference is None:
        return Projection(available=False, why="no answered requests to measure")
    rows: list[dict[str, Any]] = []
    for caching in (False, True):
        for batch in (False, True):
            c = per_request_cost(pricing, candidate, caching=caching, batch=batch,
                                 batch_cache_hit_rate=batch_cache_hit_rate)
            r = per_request_cost(pricing, reference, caching=caching, batch=batch,
                                 batch_cache_hit_rate=batch_cache_hit_rate)
            stacks = {"all_reference": r, "all_candidate": c}
            if escalation_rate is not None:
                stacks["routed"] = c + escalation_rate * r
            if escalation_rate_held_out is not None:
                stacks["routed_held_out"] = c + escalation_rate_held_out * r
            rows.extend({"stack": stack, "caching": caching, "batch": batch, "per_request_usd": per_request,
                         "per_day_usd": per_request * daily_requests,
                         "per_month_usd": per_request * daily_requests * days_per_month}
                        for stack, per_request in stacks.items())
    baseline = next(row for row in rows
                    if row["stack"] == "all_reference" and not row["caching"] and not row["batch"])
    return Projection(
        available=True, daily_requests=daily_requests, days_per_month=days_per_month,
        escalation_rate=escalation_rate, escalation_rate_held_out=escalation_rate_held_out,
        escalation_source=escalation_source,
        measured={role: MeasuredUsage(**u.__dict__)
                  for role, u in (("candidate", candidate), ("reference", reference))},
        baseline="all_reference, real time, no caching (the seed's starting point)",
        rows=[ProjectionRow(**row,
                            saving_vs_baseline=1 - row["per_request_usd"] / baseline["per_request_usd"])
              for row in rows],
        pricing_as_of=pricing.as_of, batch_cache_hit_rate=batch_cache_hit_rate,
        caching_profile=caching_profile(candidate, reference, pricing, daily_requests=daily_requests,
                                        days_per_month=days_per_month,
                                        escalation_rate=escalation_rate_held_out or escalation_rate,
                                        hourly_share=hourly_share, batch_every_minutes=batch_every_minutes,
                                        batch_hit_rate=batch_hit_rate))
