"""The price table as users see it: which models it knows, how old it is, and what a mistyped model id
was probably meant to be.

The table is built in (``evalkit/data/pricing.toml``, dated with ``as_of`` and its ``source``) and
overridden model by model in ``evalkit.toml``'s ``[pricing]`` section (see ``docs/pricing.md``).
``evalkit prices`` lists it; ``evalkit prices check`` says when it is older than a number of days.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from evalkit.config import LongContextPrices, ModelPrice, PricingTable, load_settings
from evalkit.errors import PricingError

#: Prices older than this many days are worth checking again (``evalkit prices check --max-age``).
DEFAULT_MAX_AGE_DAYS = 90


def sdk_model_ids() -> tuple[str, ...]:
    """Model ids the installed ``anthropic`` SDK knows (empty if it cannot be asked)."""
    from evalkit.providers.anthropic import known_model_ids  # noqa: PLC0415 - imports the SDK

    return known_model_ids()


def known_model_ids(pricing: PricingTable) -> list[str]:
    """Every model id evalkit can name: the priced ones, their aliases and the SDK's list."""
    return sorted({*pricing.models, *pricing.aliases, *sdk_model_ids()})


def suggest_model(model: str, pricing: PricingTable) -> list[str]:
    """Close matches for a model id that has no price (best first; empty when nothing is close)."""
    known = known_model_ids(pricing)
    folded = {name.casefold().replace(".", "-").replace("_", "-"): name for name in known}
    exact = folded.get(model.casefold().replace(".", "-").replace("_", "-").strip())
    close = difflib.get_close_matches(model, known, n=3, cutoff=0.75)
    return list(dict.fromkeys(([exact] if exact else []) + close))


def is_priced(model: str, pricing: PricingTable) -> bool:
    try:
        pricing.price_for(model)
    except PricingError:
        return False
    return True


@dataclass(frozen=True)
class PriceAge:
    as_of: date | None  # None when the table's as_of is not an ISO date
    days: int | None
    max_age_days: int

    @property
    def stale(self) -> bool:
        return self.days is None or self.days > self.max_age_days


def price_age(pricing: PricingTable, *, today: date | None = None,
              max_age_days: int = DEFAULT_MAX_AGE_DAYS) -> PriceAge:
    """How many days old the price table is (by its ``as_of``), and whether that is over ``max_age_days``."""
    try:
        as_of = date.fromisoformat(pricing.as_of[:10])
    except ValueError:
        return PriceAge(as_of=None, days=None, max_age_days=max_age_days)
    return PriceAge(as_of=as_of, days=((today or date.today()) - as_of).days, max_age_days=max_age_days)


@dataclass(frozen=True)
class PriceRow:
    model: str
    prices: ModelPrice
    overridden: bool  # from evalkit.toml rather than the built-in table
    aliases: list[str]

    @property
    def long_context(self) -> LongContextPrices | None:
        return self.prices.long_context


def price_rows(pricing: PricingTable) -> list[PriceRow]:
    """The table, one row per priced model, with the aliases that resolve to it."""
    aliases: dict[str, list[str]] = {}
    for alias, target in pricing.aliases.items():
        aliases.setdefault(target, []).append(alias)
    return [PriceRow(model=name, prices=price, overridden=name in pricing.overridden,
                     aliases=sorted(aliases.get(name, []))) for name, price in sorted(pricing.models.items())]


def as_toml(pricing: PricingTable) -> str:
    """The table as an ``evalkit.toml`` ``[pricing]`` section: paste it, edit the numbers, set ``as_of``."""
    lines = ["[pricing]", f'as_of = "{date.today().isoformat()}"  # the day you checked these prices',
             f"source = {json.dumps(pricing.source)}", f"batch_discount = {pricing.batch_discount:g}", ""]
    for row in price_rows(pricing):
        lines.append(f'[pricing.models."{row.model}"]')
        for category in ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read"):
            lines.append(f"{category} = {getattr(row.prices, category):g}")
        if row.prices.note:
            lines.append(f"note = {json.dumps(row.prices.note)}")
        if row.long_context is not None:
            lines.append(f'[pricing.models."{row.model}".long_context]')
            lines.append(f"threshold_tokens = {row.long_context.threshold_tokens}")
            for category in ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read"):
                lines.append(f"{category} = {getattr(row.long_context, category):g}")
        lines.append("")
    return "\n".join(lines)


@dataclass(frozen=True)
class PriceList:
    """The price table in effect for a project: built-in, with evalkit.toml's overrides."""

    table: PricingTable
    rows: list[PriceRow]
    age: PriceAge
    settings_file: str | None  # the evalkit.toml whose [pricing] section applies, if any

    def as_toml(self) -> str:
        """The table as an ``evalkit.toml`` ``[pricing]`` section to edit (see :func:`as_toml`)."""
        return as_toml(self.table)

    def platform_lines(self) -> list[str]:
        """How Amazon Bedrock and Google Vertex AI prices relate to the table (docs/platforms.md)."""
        return [f"{name} (as of {rules.as_of}): {rules.note or 'the prices above'}"
                for name, rules in sorted(self.table.platforms.items())]


def price_list(pricing: PricingTable, settings_file: str | None, *,
               max_age_days: int = DEFAULT_MAX_AGE_DAYS) -> PriceList:
    return PriceList(table=pricing, rows=price_rows(pricing),
                     age=price_age(pricing, max_age_days=max_age_days), settings_file=settings_file)


def project_price_table(start: str | Path | None = None, *,
                        max_age_days: int = DEFAULT_MAX_AGE_DAYS) -> PriceList:
    """The price table a project's runs use (built-in + its evalkit.toml's [pricing]), and its age."""
    settings = load_settings(Path(start) if start else None)
    file = str(settings.settings_file) if settings.settings_file else None
    return price_list(settings.pricing, file, max_age_days=max_age_days)
