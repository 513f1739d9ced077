"""Production cost projection: what the task would cost per day and month under each serving stack.

From the tokens measured in the run (mean per request and model), at the task's daily volume: the
seed's three stacks — always the reference, always the candidate, and the routed cascade (the candidate
always runs; the reference runs on escalations) — each with and without prompt caching and the batch
discount. With caching, the static prefix is billed as a cache read (steady traffic keeps it warm; one
write per TTL is negligible at production volume); without it, as plain input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from evalkit.config import PricingTable
from evalkit.record.rows import SampleResult


@dataclass(frozen=True)
class MeanUsage:
    model: str
    input_tokens: float  # everything the model reads per request
    prefix_tokens: float  # of which the cacheable static prefix
    output_tokens: float


def mean_usage(results: list[SampleResult], role: str) -> MeanUsage | None:
    """Mean tokens per request. Reference answers read from a production log carry no usage: their
    tokens are taken to be the candidate's (same prompt), priced at the reference's rates."""
    model = results[0].calls[role].request.model if results else ""
    usages = [r.calls[role].response.usage for r in results
              if r.calls[role].response is not None and r.calls[role].response.mode != "log"]
    if not usages and role == "reference":
        proxy = mean_usage(results, "candidate")
        return None if proxy is None else MeanUsage(model, proxy.input_tokens, proxy.prefix_tokens,
                                                    proxy.output_tokens)
    if not usages:
        return None
    prefix = max((u.cache_read_input_tokens + u.cache_creation_input_tokens for u in usages), default=0)
    return MeanUsage(model=model, input_tokens=float(np.mean([u.total_input_tokens for u in usages])),
                     prefix_tokens=float(prefix), output_tokens=float(np.mean([u.output_tokens for u in usages])))


def per_request_cost(pricing: PricingTable, usage: MeanUsage, *, caching: bool, batch: bool) -> float:
    rates = pricing.price_for(usage.model).for_prompt(int(usage.input_tokens))
    cached = usage.prefix_tokens if caching else 0.0
    cost = ((usage.input_tokens - cached) * rates.input + cached * rates.cache_read
            + usage.output_tokens * rates.output) / 1_000_000
    return cost * (pricing.batch_discount if batch else 1.0)


def project(results: list[SampleResult], pricing: PricingTable, *, daily_requests: int, days_per_month: int,
            escalation_rate: float | None, escalation_source: str) -> dict[str, Any]:
    candidate, reference = mean_usage(results, "candidate"), mean_usage(results, "reference")
    if candidate is None or reference is None:
        return {"available": False, "why": "no answered requests to measure"}
    rows = []
    for caching in (False, True):
        for batch in (False, True):
            c = per_request_cost(pricing, candidate, caching=caching, batch=batch)
            r = per_request_cost(pricing, reference, caching=caching, batch=batch)
            stacks = {"all_reference": r, "all_candidate": c}
            if escalation_rate is not None:
                stacks["routed"] = c + escalation_rate * r
            for stack, per_request in stacks.items():
                rows.append({"stack": stack, "caching": caching, "batch": batch,
                             "per_request_usd": per_request, "per_day_usd": per_request * daily_requests,
                             "per_month_usd": per_request * daily_requests * days_per_month})
    baseline = next(row for row in rows if row["stack"] == "all_reference" and not row["caching"] and not row["batch"])
    for row in rows:
        row["saving_vs_baseline"] = 1 - row["per_request_usd"] / baseline["per_request_usd"]
    return {
        "available": True, "daily_requests": daily_requests, "days_per_month": days_per_month,
        "escalation_rate": escalation_rate, "escalation_source": escalation_source,
        "measured": {role: u.__dict__ for role, u in (("candidate", candidate), ("reference", reference))},
        "baseline": "all_reference, real time, no caching (the seed's starting point)",
        "rows": rows, "pricing_as_of": pricing.as_of,
    }
