"""Cost estimate before any request, and the budget guard.

The estimate prices every request the response cache cannot answer: input tokens counted offline with
evalkit's stand-in tokenizer (the cacheable prefix as one write and then reads when caching applies),
output tokens at the mean measured in cached answers of the same model when there are any, else at
half of max_tokens — and an upper bound at max_tokens. Batch mode applies the batch discount.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evalkit.providers.response_cache import ResponseCache
from evalkit.prompts.prompt_caching import CachePlan
from evalkit.config import PricingTable
from evalkit.errors import EvalkitError
from evalkit.prompts.render import ModelRequest
from evalkit.tokens import count_tokens


class BudgetError(EvalkitError):
    """The run would cost (or has cost) more than --max-cost / max_cost_usd. Nothing beyond it was spent."""

    exit_code = 6


@dataclass
class Estimate:
    requests: int = 0
    cached: int = 0
    expected_usd: float = 0.0
    upper_usd: float = 0.0
    by_model: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"requests_to_send": self.requests, "answered_from_cache": self.cached,
                "expected_usd": round(self.expected_usd, 6), "upper_bound_usd": round(self.upper_usd, 6),
                "by_model": self.by_model}

    def describe(self) -> str:
        return (f"estimated cost: ${self.expected_usd:.4f} for {self.requests} requests "
                f"(at most ${self.upper_usd:.4f} if every answer used max_tokens); "
                f"{self.cached} already answered by the response cache")


def _input_tokens(request: ModelRequest) -> tuple[int, int]:
    """(prefix tokens, other input tokens) of a request."""
    params = request.params
    system = " ".join(block.get("text", "") for block in params.get("system") or [])
    user = " ".join(block.get("text", "") for message in params.get("messages") or []
                    for block in (message.get("content") or []) if isinstance(block, dict))
    schema = ((params.get("output_config") or {}).get("format") or {}).get("schema")
    prefix = count_tokens(system) + (count_tokens(str(schema)) if schema else 0)
    return prefix, count_tokens(user) + 8


def estimate_cost(requests: list[ModelRequest], cache: ResponseCache, endpoint: str, pricing: PricingTable,
                  plans: dict[str, CachePlan], *, batch: bool) -> Estimate:
    estimate = Estimate()
    measured: dict[str, list[int]] = {}
    pending: list[ModelRequest] = []
    for request in requests:
        hit = cache.get(endpoint, request) if cache.readable else None
        if hit is not None:
            estimate.cached += 1
            measured.setdefault(request.model, []).append(hit.usage.output_tokens)
        else:
            pending.append(request)
    factor = pricing.batch_discount if batch else 1.0
    written: set[str] = set()
    for request in pending:
        rates = pricing.price_for(request.model)
        prefix, rest = _input_tokens(request)
        plan = plans.get(request.role) or plans.get("reference")
        if plan is not None and plan.enabled:
            if request.model in written:
                prefix_cost = prefix * rates.cache_read
            else:
                prefix_cost = prefix * (rates.cache_write_1h if plan.ttl == "1h" else rates.cache_write_5m)
                written.add(request.model)
        else:
            prefix_cost = prefix * rates.input
        max_tokens = int(request.params.get("max_tokens", 0))
        seen = measured.get(request.model)
        expected_out = sum(seen) / len(seen) if seen else max_tokens / 2
        input_cost = prefix_cost + rest * rates.input
        expected = (input_cost + expected_out * rates.output) * factor / 1_000_000
        upper = (input_cost + max_tokens * rates.output) * factor / 1_000_000
        entry = estimate.by_model.setdefault(request.model, {"requests": 0, "expected_usd": 0.0, "upper_usd": 0.0})
        entry["requests"] += 1
        entry["expected_usd"] += expected
        entry["upper_usd"] += upper
        estimate.requests += 1
        estimate.expected_usd += expected
        estimate.upper_usd += upper
    return estimate


def check_budget(estimate: Estimate, max_cost: float | None) -> None:
    """Refuse to start when the expected cost passes the budget."""
    if max_cost is not None and estimate.expected_usd > max_cost:
        raise BudgetError(
            f"refusing to start: the {estimate.describe()}, over the budget of ${max_cost:.4f}; no request was sent",
            hint="raise --max-cost (or max_cost_usd in the task), or evaluate fewer samples with -n")
