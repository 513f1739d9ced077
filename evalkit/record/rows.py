"""Per-sample results and per-model totals: what ``results.jsonl`` holds and the report reads.

This is the join of the pipeline's stages for one sample: its inputs, both calls (from the API or the
cache), the parsed answers, the scores and what each call cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evalkit.config import PricingTable
from evalkit.cost.prices import Cost, call_cost
from evalkit.datasets import Sample
from evalkit.providers.execute import CallResult
from evalkit.scoring.answers import Answer
from evalkit.providers.base import Usage
from evalkit.scoring.samples import ScoredSample

ROLES = ("candidate", "reference")


@dataclass(frozen=True)
class SampleResult:
    sample: Sample
    calls: dict[str, CallResult]
    answers: dict[str, Answer]
    scored: ScoredSample

    def usage(self, role: str) -> Usage:
        response = self.calls[role].response
        return response.usage if response is not None else Usage()

    def cost(self, role: str, pricing: PricingTable) -> Cost:
        call = self.calls[role]
        if call.response is None or call.response.mode == "log":
            return Cost()  # failed calls are not billed; logged production answers were paid for already
        return call_cost(pricing, call.request.model, call.response.usage, batch=call.response.mode == "batch")

    def to_row(self, pricing: PricingTable) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": self.sample.id,
            "input_hash": self.sample.input_hash,
            "text": self.sample.text,
            "gold": self.sample.label,
            "segments": self.sample.segments,
        }
        for role in ROLES:
            call, answer = self.calls[role], self.answers[role]
            response = call.response
            row[role] = {
                "model": call.request.model,
                "output": response.text if response is not None else None,
                "stop_reason": response.stop_reason if response is not None else None,
                "answer": answer.to_dict(),
                "usage": self.usage(role).to_dict(),
                "cost_usd": round(self.cost(role, pricing).total, 8),
                "mode": response.mode if response is not None else None,
                "batch_id": response.batch_id if response is not None else None,
                "request_id": response.request_id if response is not None else None,
                "from_cache": call.from_cache,
                "error": call.error.message if call.error is not None else None,
            }
        row["scores"] = self.scored.scores()
        if self.scored.kind != "classification":
            row["scores"].update(metric_values=self.scored.primary, threshold=self.scored.threshold,
                                 judge=self.scored.judge)
        return row


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

    def caching(self) -> dict[str, Any]:
        """Cache hit rate (share of cached-prefix tokens read rather than written) and dollars saved."""
        read, written = self.usage.cache_read_input_tokens, self.usage.cache_creation_input_tokens
        return {
            "cache_read_tokens": read, "cache_write_tokens": written,
            "cache_write_5m_tokens": self.usage.cache_write_5m_tokens,
            "cache_write_1h_tokens": self.usage.cache_write_1h_tokens,
            "hit_rate": round(read / (read + written), 6) if read + written else None,
            "requests_with_cache_read": self.requests_with_cache_read,
            "requests_with_cache_write": self.requests_with_cache_write,
            "savings_usd": round(self.cost_uncached.total - self.cost.total, 8),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "calls": self.calls, "answered": self.answered, "from_cache": self.from_cache,
            "usage": self.usage.to_dict(), "cost_usd": self.cost.to_dict(),
            "cost_this_run_usd": self.cost_this_run.to_dict(),
            "cost_without_batch_discount_usd": self.cost_standard.to_dict(),
        }


def totals(results: list[SampleResult], pricing: PricingTable) -> dict[str, ModelTotals]:
    """Per-role totals. ``cost`` is the price of every answer used; ``cost_this_run`` only what was
    paid for now (cache hits were paid for by an earlier run)."""
    out: dict[str, ModelTotals] = {}
    for role in ROLES:
        model = results[0].calls[role].request.model if results else ""
        total = ModelTotals(model=model)
        for result in results:
            call = result.calls[role]
            total.calls += 1
            if call.response is None:
                continue
            total.answered += 1
            cost = result.cost(role, pricing)
            total.usage = total.usage + call.response.usage
            total.cost = total.cost + cost
            if call.from_cache:
                total.from_cache += 1
            else:
                total.cost_this_run = total.cost_this_run + cost
            if call.response.mode == "log":
                continue
            usage = call.response.usage
            total.cost_standard = total.cost_standard + call_cost(pricing, call.request.model, usage)
            uncached = Usage(input_tokens=usage.total_input_tokens, output_tokens=usage.output_tokens)
            total.cost_uncached = total.cost_uncached + call_cost(pricing, call.request.model, uncached,
                                                                  batch=call.response.mode == "batch")
            total.requests_with_cache_read += usage.cache_read_input_tokens > 0
            total.requests_with_cache_write += usage.cache_creation_input_tokens > 0
        out[role] = total
    return out
