"""What each role's answers cost over a run: billed, paid now, and what the discounts and caching saved."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from evalkit.config import PricingTable
from evalkit.cost.prices import Cost, attempt_upper_bound, call_cost, uncached_cost
from evalkit.providers.base import Usage
from evalkit.providers.execute import CallResult
from evalkit.scoring.samples import ROLES, SampleResult
from evalkit.tokens import count_tokens


def result_cost(result: SampleResult, role: str, pricing: PricingTable) -> Cost:
    """What one sample's call for ``role`` was billed (cache hits were billed when first paid for)."""
    call = result.calls[role]
    if call.response is None or call.response.mode == "log":
        return Cost()  # failed calls are not billed; logged production answers were paid for already
    return call_cost(pricing, call.request.model, call.response.usage, batch=call.response.mode == "batch")


@dataclass
class ModelTotals:
    """Usage and cost of one role over a run."""

    model: str
    calls: int = 0
    answered: int = 0
    from_cache: int = 0
    usage: Usage = field(default_factory=Usage)
    cost: Cost = field(default_factory=Cost)
    cost_this_run: Cost = field(default_factory=Cost)
    #: The same answers at standard (non-batch) rates: what the batch discount saved.
    cost_standard: Cost = field(default_factory=Cost)
    #: The same answers with every input token billed as uncached input: what prompt caching saved.
    cost_uncached: Cost = field(default_factory=Cost)
    requests_with_cache_read: int = 0
    requests_with_cache_write: int = 0

    def add(self, result: SampleResult, role: str, pricing: PricingTable) -> None:
        call = result.calls[role]
        self.calls += 1
        if call.response is None:
            return
        self.answered += 1
        cost = result_cost(result, role, pricing)
        self.usage = self.usage + call.response.usage
        self.cost = self.cost + cost
        if call.from_cache:
            self.from_cache += 1
        else:
            self.cost_this_run = self.cost_this_run + cost
        if call.response.mode == "log":
            return
        usage = call.response.usage
        self.cost_standard = self.cost_standard + call_cost(pricing, call.request.model, usage)
        self.cost_uncached = self.cost_uncached + uncached_cost(pricing, call.request.model, usage,
                                                                batch=call.response.mode == "batch")
        self.requests_with_cache_read += usage.cache_read_input_tokens > 0
        self.requests_with_cache_write += usage.cache_creation_input_tokens > 0


def totals(results: Sequence[SampleResult], pricing: PricingTable) -> dict[str, ModelTotals]:
    """Per-role totals. ``cost`` is the price of every answer used; ``cost_this_run`` only what was
    paid for now (cache hits were paid for by an earlier run)."""
    out: dict[str, ModelTotals] = {}
    for role in ROLES:
        total = ModelTotals(model=results[0].calls[role].request.model if results else "")
        for result in results:
            total.add(result, role, pricing)
        out[role] = total
    return out


def possible_double_billing(calls: Sequence[CallResult], pricing: PricingTable) -> float:
    """USD that attempts which may have been billed without their answer arriving can have cost at most
    (``CallResult.maybe_billed`` of each call): the difference between what a run paid and its upper bound.
    Each attempt is priced at its request's worst case: every input token a cache write, max_tokens out."""
    total = 0.0
    for call in calls:
        if not call.maybe_billed:
            continue
        params = call.request.params
        if call.response is not None:
            input_tokens = call.response.usage.total_input_tokens
        else:
            input_tokens = count_tokens(str(params.get("system") or "")) + count_tokens(
                str(params.get("messages") or "")) + 8
        total += call.maybe_billed * attempt_upper_bound(pricing, call.request.model, input_tokens,
                                                         int(params.get("max_tokens") or 0))
    return total
