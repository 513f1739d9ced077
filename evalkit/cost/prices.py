"""Dollars from token counts: the one place where tokens are multiplied by prices.

Every figure evalkit shows — what a call was billed, the mean cost of a request in production, the
estimate before a run — comes from :func:`price_tokens`, with the batch discount and the cache
multipliers. Prices come from the pricing table in settings (built-in, dated, overridable). A model
without a price is an error, never $0.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, fields

from evalkit.config import ModelPrice, PricingTable, TokenPrices
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


def price_tokens(rates: TokenPrices, *, input: float = 0.0, output: float = 0.0, cache_write_5m: float = 0.0,
                 cache_write_1h: float = 0.0, cache_read: float = 0.0, factor: float = 1.0) -> Cost:
    """Token counts (possibly fractional means) at ``rates``; ``factor`` is the batch discount or 1."""
    scale = _PER_TOKEN * factor
    return Cost(input=input * rates.input * scale, output=output * rates.output * scale,
                cache_write_5m=cache_write_5m * rates.cache_write_5m * scale,
                cache_write_1h=cache_write_1h * rates.cache_write_1h * scale,
                cache_read=cache_read * rates.cache_read * scale)


def platform_pricing(pricing: PricingTable, platform: str, *, regional: bool) -> PricingTable:
    """The price table of ``platform`` (bedrock, vertex): the Claude API's prices, plus the platform's
    regional premium on every token category when ``regional`` (not the global endpoint). Models
    overridden in evalkit.toml keep their price as written: the user stated what they pay."""
    if platform == "anthropic":
        return pricing
    rules = pricing.platforms.get(platform)
    if rules is None:
        from evalkit.errors import PricingError  # noqa: PLC0415

        raise PricingError(f"the pricing table has no [platforms.{platform}] section",
                           hint="add it to evalkit/data/pricing.toml (see docs/pricing.md)")
    where = "regional" if regional else "global"
    source = f"{pricing.source}; {platform} ({rules.as_of}): {rules.source}"
    if not regional or not rules.regional_premium:
        return pricing.model_copy(update={"priced_for": f"{platform} ({where})", "source": source})

    def scaled(name: str, price: ModelPrice) -> ModelPrice:
        if name in pricing.overridden or not any(fnmatch.fnmatchcase(name, glob)
                                                  for glob in rules.regional_premium_models):
            return price
        factor = 1.0 + rules.regional_premium
        rates = {f: round(getattr(price, f) * factor, 6) for f in _CATEGORIES}
        long = price.long_context
        if long is not None:
            long = long.model_copy(update={f: round(getattr(long, f) * factor, 6) for f in _CATEGORIES})
        return price.model_copy(update={**rates, "long_context": long})

    return pricing.model_copy(update={
        "models": {name: scaled(name, price) for name, price in pricing.models.items()},
        "priced_for": f"{platform} ({where}, +{rules.regional_premium:.0%})", "source": source})


_CATEGORIES = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")


def discount(pricing: PricingTable, *, batch: bool) -> float:
    return pricing.batch_discount if batch else 1.0


def call_cost(pricing: PricingTable, model: str, usage: Usage, *, batch: bool = False) -> Cost:
    """What one call was billed. ``batch`` applies the Batch API discount to every category."""
    rates = pricing.price_for(model).for_prompt(usage.total_input_tokens)
    return price_tokens(rates, input=usage.input_tokens, output=usage.output_tokens,
                        cache_write_5m=usage.cache_write_5m_tokens,
                        cache_write_1h=usage.cache_write_1h_tokens,
                        cache_read=usage.cache_read_input_tokens, factor=discount(pricing, batch=batch))


def uncached_cost(pricing: PricingTable, model: str, usage: Usage, *, batch: bool = False) -> Cost:
    """The same call with every input token billed as plain input: what prompt caching saved."""
    return call_cost(pricing, model,
                     Usage(input_tokens=usage.total_input_tokens, output_tokens=usage.output_tokens),
                     batch=batch)


@dataclass(frozen=True)
class MeanUsage:
    """Mean tokens of one model's requests, as measured in a run."""

    model: str
    input_tokens: float  # everything the model reads per request
    prefix_tokens: float  # of which the cacheable static prefix
    output_tokens: float


def per_request_cost(pricing: PricingTable, usage: MeanUsage, *, caching: bool, batch: bool,
                     batch_cache_hit_rate: float = 1.0) -> float:
    """Mean USD per request; with ``caching`` the static prefix is billed as a cache read (steady traffic
    keeps it warm; one write per TTL is negligible at production volume). In batches hits are best-effort:
    ``batch_cache_hit_rate`` of the requests read the prefix, the others write it (1 h TTL) again."""
    rates = pricing.price_for(usage.model).for_prompt(int(usage.input_tokens))
    prefix = usage.prefix_tokens if caching else 0.0
    hit = batch_cache_hit_rate if batch else 1.0
    return price_tokens(rates, input=usage.input_tokens - prefix, cache_read=hit * prefix,
                        cache_write_1h=(1 - hit) * prefix, output=usage.output_tokens,
                        factor=discount(pricing, batch=batch)).total


def attempt_upper_bound(pricing: PricingTable, model: str, input_tokens: int, max_tokens: int) -> float:
    """The most one attempt of a request can have been billed (real time): every input token at the
    dearest input rate (a cache write), and ``max_tokens`` of output (long-context rates if they apply)."""
    rates = pricing.price_for(model).for_prompt(input_tokens)
    dearest = max(rates.input, rates.cache_write_5m, rates.cache_write_1h)
    return (input_tokens * dearest + max_tokens * rates.output) * _PER_TOKEN
