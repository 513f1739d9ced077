"""Dollars from token counts: per call, per model, with the batch discount and cache multipliers.

Prices come from the pricing table in settings (built-in, dated, overridable). A model without a price
is an error, never $0.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from evalkit.config import PricingTable
from evalkit.providers.base import Usage

_PER_TOKEN = 1e-6  # prices are per million tokens


@dataclass(frozen=True)
class Cost:
    """USD by token category."""

    input: float = 0.0
    output: float = 0.0
    cache_write_5m: float = 0.0
    cache_write_1h: float = 0.0
    cache_read: float = 0.0

    @property
    def total(self) -> float:
        return self.input + self.output + self.cache_write_5m + self.cache_write_1h + self.cache_read

    def __add__(self, other: Cost) -> Cost:
        return Cost(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def to_dict(self) -> dict[str, float]:
        data = {f.name: round(getattr(self, f.name), 8) for f in fields(self)}
        data["total"] = round(self.total, 8)
        return data


def call_cost(pricing: PricingTable, model: str, usage: Usage, *, batch: bool = False) -> Cost:
    """What one call was billed. ``batch`` applies the Batch API discount to every category."""
    rates = pricing.price_for(model).for_prompt(usage.total_input_tokens)
    factor = _PER_TOKEN * (pricing.batch_discount if batch else 1.0)
    return Cost(
        input=usage.input_tokens * rates.input * factor,
        output=usage.output_tokens * rates.output * factor,
        cache_write_5m=usage.cache_write_5m_tokens * rates.cache_write_5m * factor,
        cache_write_1h=usage.cache_write_1h_tokens * rates.cache_write_1h * factor,
        cache_read=usage.cache_read_input_tokens * rates.cache_read * factor,
    )
