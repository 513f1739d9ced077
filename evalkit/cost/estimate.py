"""Cost estimate before any request, and the budget guard.

The estimate prices every request the response cache cannot answer: input tokens counted offline with
evalkit's stand-in tokenizer (the cacheable prefix as one write and then reads when caching applies),
output tokens at the mean measured in cached answers of the same model when there are any, else at the
planning assumption for its thinking (by effort) plus a short answer — and an upper bound at max_tokens.
Batch mode applies the batch discount, and prices prompt caching as the best effort it is inside batches
(facts §2: "typically 30% to 98%" of the requests read the cached prefix, the others write it again): at
the simulator's configured ``batch_cache_hit_rate``, or for the real API at the conservative
:data:`ASSUMED_BATCH_CACHE_HIT_RATE`, the low end of the documented range.
"""

from __future__ import annotations

from evalkit._hashing import digest
from evalkit._typed import Typed
from evalkit.config import PricingTable
from evalkit.cost.prices import call_cost, discount, price_tokens
from evalkit.errors import BudgetError
from evalkit.modelinfo import default_effort, expected_thinking_tokens
from evalkit.prompts.prompt_caching import CachePlan, media_tokens
from evalkit.prompts.render import ModelRequest
from evalkit.providers.base import ModelResponse
from evalkit.providers.response_cache import ResponseCache
from evalkit.tokens import count_tokens

#: Share of the batch requests after a model's cache warm-up assumed to read the cached prefix on the real
#: API: the low end of the documented 30–98% (facts §2), so that the estimate errs on the expensive side.
ASSUMED_BATCH_CACHE_HIT_RATE = 0.30
ASSUMED_BATCH_CACHE_HIT_BASIS = ("a conservative assumption for the Anthropic API: the low end of the "
                                 "documented 30–98%")


class ModelEstimate(Typed):
    requests: int
    expected_usd: float
    upper_usd: float


class Estimate(Typed):
    """What the requests the response cache cannot answer would cost."""

    requests_to_send: int = 0
    answered_from_cache: int = 0
    expected_usd: float = 0.0
    upper_bound_usd: float = 0.0
    by_model: dict[str, ModelEstimate] = {}
    #: Output budgets that look too small for the thought plus the answer (answers would be cut off).
    warnings: list[str] = []
    batch: bool = False
    #: Share of batch requests after the warm-up assumed to read the cached prefix (best-effort), and why.
    batch_cache_hit_rate: float = ASSUMED_BATCH_CACHE_HIT_RATE
    batch_cache_hit_basis: str = ASSUMED_BATCH_CACHE_HIT_BASIS

    def describe(self) -> str:
        text = (f"estimated cost: ${self.expected_usd:.4f} for {self.requests_to_send} requests "
                f"(at most ${self.upper_bound_usd:.4f} if every answer used max_tokens); "
                f"{self.answered_from_cache} already answered by the response cache")
        notes = [text]
        if self.batch:
            notes.append(f"note: prompt-cache hits inside batches are best-effort: this estimate assumes "
                         f"{self.batch_cache_hit_rate:.0%} of the requests after each model's warm-up read "
                         f"the cached prefix ({self.batch_cache_hit_basis}); the others write it again")
        return "\n".join([*notes, *(f"warning: {warning}" for warning in self.warnings)])


def _input_tokens(request: ModelRequest) -> tuple[int, int]:
    """(prefix tokens, other input tokens) of a request."""
    params = request.params
    system = " ".join(block.get("text", "") for block in params.get("system") or [])
    user = " ".join(block.get("text", "") for message in params.get("messages") or []
                    for block in (message.get("content") or []) if isinstance(block, dict))
    schema = ((params.get("output_config") or {}).get("format") or {}).get("schema")
    prefix = count_tokens(system) + (count_tokens(str(schema)) if schema else 0)
    files_prefix, files = media_tokens(params)  # documents and images (docs/inputs.md)
    return prefix + files_prefix, count_tokens(user) + files + 8


def estimate_cost(requests: list[ModelRequest], cache: ResponseCache, endpoint: str, pricing: PricingTable,
                  plans: dict[str, CachePlan], *, batch: bool, batch_cache_hit_rate: float | None = None,
                  batch_cache_hit_basis: str | None = None) -> Estimate:
    """``batch_cache_hit_rate``: the expected share of batch requests reading the cached prefix (None: the
    real API's conservative :data:`ASSUMED_BATCH_CACHE_HIT_RATE`)."""
    hit_rate = ASSUMED_BATCH_CACHE_HIT_RATE if batch_cache_hit_rate is None else batch_cache_hit_rate
    basis = batch_cache_hit_basis or (ASSUMED_BATCH_CACHE_HIT_BASIS if batch_cache_hit_rate is None
                                      else "as configured")
    measured: dict[str, list[int]] = {}
    pending: list[ModelRequest] = []
    cached = 0
    for request in requests:
        hit = cache.get(endpoint, request, keep=True) if cache.readable else None  # the run reads it next
        if hit is not None:
            cached += 1
            measured.setdefault(request.model, []).append(hit.usage.output_tokens)
        else:
            pending.append(request)
    factor = discount(pricing, batch=batch)
    written: set[tuple[str, str]] = set()
    by_model: dict[str, dict[str, float]] = {}
    for request in pending:
        rates = pricing.price_for(request.model)
        prefix, rest = _input_tokens(request)
        plan = plans.get(request.role) or plans.get("reference")
        tokens = {"input": float(rest)}
        if plan is not None and plan.enabled:
            # One write per distinct prefix (model and system blocks): a prompt variant writes its own.
            shared = (request.model, digest(request.params.get("system")))
            write = "cache_write_1h" if plan.ttl == "1h" else "cache_write_5m"
            if shared not in written:
                tokens[write] = prefix
                written.add(shared)
            elif batch:  # best-effort: a share reads the prefix, the others write it again
                tokens["cache_read"] = hit_rate * prefix
                tokens[write] = (1 - hit_rate) * prefix
            else:
                tokens["cache_read"] = prefix
        else:
            tokens["input"] += prefix
        max_tokens = int(request.params.get("max_tokens", 0))
        seen = measured.get(request.model)
        effort = (request.params.get("output_config") or {}).get("effort")
        thinking = (request.params.get("thinking") or {}).get("type")
        thought = expected_thinking_tokens(request.model, effort=effort, thinking=thinking)
        guess = thought + _ANSWER_TOKENS_GUESS
        expected_out = sum(seen) / len(seen) if seen else min(max_tokens, guess)
        expected = price_tokens(rates, **tokens, output=expected_out, factor=factor).total
        upper = price_tokens(rates, **tokens, output=max_tokens, factor=factor).total
        entry = by_model.setdefault(request.model, {"requests": 0, "expected_usd": 0.0, "upper_usd": 0.0})
        entry["requests"] += 1
        entry["expected_usd"] += expected
        entry["upper_usd"] += upper
    return Estimate(requests_to_send=len(pending), answered_from_cache=cached,
                    warnings=budget_warnings(requests, measured), batch=batch,
                    batch_cache_hit_rate=hit_rate, batch_cache_hit_basis=basis,
                    expected_usd=round(sum(e["expected_usd"] for e in by_model.values()), 6),
                    upper_bound_usd=round(sum(e["upper_usd"] for e in by_model.values()), 6),
                    by_model={model: ModelEstimate(requests=int(e["requests"]),
                                                   expected_usd=e["expected_usd"], upper_usd=e["upper_usd"])
                              for model, e in by_model.items()})


#: Answer tokens assumed for a model no cached answer has measured yet (a short JSON answer).
_ANSWER_TOKENS_GUESS = 150


def budget_warnings(requests: list[ModelRequest], measured: dict[str, list[int]]) -> list[str]:
    """One warning per model whose ``max_tokens`` is below what its thinking plus its answer are expected
    to need — thinking tokens count toward max_tokens, so those answers would end cut off."""
    warnings = []
    seen: set[str] = set()
    for request in requests:
        if request.model in seen:
            continue
        seen.add(request.model)
        params = request.params
        effort = (params.get("output_config") or {}).get("effort")
        thinking = (params.get("thinking") or {}).get("type")
        thought = expected_thinking_tokens(request.model, effort=effort, thinking=thinking)
        outputs = measured.get(request.model)
        answer = sum(outputs) / len(outputs) if outputs else _ANSWER_TOKENS_GUESS
        max_tokens = int(params.get("max_tokens", 0))
        if thought and max_tokens < 2 * thought + answer:
            level = effort or f"{default_effort(request.model) or 'medium'} (the model's default)"
            warnings.append(
                f"max_tokens {max_tokens} for {request.model} leaves little room: it thinks ~{thought} "
                "tokens "
                ""
                "at "
                f"effort {level} (thinking counts toward max_tokens) plus ~{answer:.0f} for the answer; "
                f"long thoughts will cut answers off. Raise max_tokens to ~{2 * thought + int(answer)} or "
                "set "
                ""
                ""
                "effort: low / thinking: disabled")
    return warnings


def check_budget(estimate: Estimate, max_cost: float | None) -> None:
    """Refuse to start when the expected cost passes the budget."""
    if max_cost is not None and estimate.expected_usd > max_cost:
        raise BudgetError(
            f"refusing to start: the {estimate.describe()}, over the budget of ${max_cost:.4f}; "
            "no request was sent",
            hint="raise --max-cost (or max_cost_usd in the task), or evaluate fewer samples with -n")


class SpendTracker:
    """Running spend of a real-time run; tells the executor to stop once the budget is reached."""

    def __init__(self, pricing: PricingTable, limit: float) -> None:
        self.pricing, self.limit, self.spent = pricing, limit, 0.0

    def add(self, request: ModelRequest, response: ModelResponse) -> bool:
        self.spent += call_cost(self.pricing, request.model, response.usage).total
        return self.spent < self.limit

    @property
    def exceeded(self) -> bool:
        return self.spent >= self.limit

    def check(self) -> None:
        """Raise when the run stopped at its budget (after every received answer was cached)."""
        if self.exceeded:
            raise BudgetError(
                f"stopped at the budget of ${self.limit:.4f} after spending ${self.spent:.4f}; every answer "
                "received is in the response cache",
                hint="re-run with a higher --max-cost to finish: cached answers are not paid for again")
