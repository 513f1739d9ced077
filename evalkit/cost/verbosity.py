"""What each model's answers cost in output tokens, and the budget and verbosity changes that would save
money.

From the measured usage of every answered request: the output-token distribution (p50/p95/p99), split into
thinking and the visible answer (the answer's tokens are counted with evalkit's stand-in tokenizer, so the
split is an estimate; the API bills thinking as output tokens and may not return its text), the
``max_tokens`` that would have cut off at most 0.5% of these answers, and the answer fields that cost
tokens though no metric reads them — each with the dollars per month it would save at the task's volume.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np

from evalkit._typed import Typed
from evalkit.config import PricingTable
from evalkit.scoring.samples import SampleResult
from evalkit.spec import TaskSpec
from evalkit.tokens import count_tokens

#: The share of answers a suggested max_tokens may cut off.
CUT_OFF_SHARE = 0.005


class FieldCost(Typed):
    name: str
    mean_tokens: float
    usd_per_month: float


class TokenAdvice(Typed):
    """One model's (one configuration's) output tokens and what trimming them would save."""

    role: str
    configuration: str | None
    model: str
    n: int
    output_p50: float
    output_p95: float
    output_p99: float
    mean_output: float
    mean_thinking: float  # estimated: output tokens beyond the visible answer, when the reply thought
    thinking_share: float
    max_tokens: int  # what the run allowed
    truncated: int  # answers that hit it
    suggested_max_tokens: int  # would have cut off at most CUT_OFF_SHARE of these answers
    cap_saving_usd_per_month: float  # output beyond the suggested cap (0 when it cuts nothing off)
    unread_fields: list[FieldCost] = []
    advice: list[str] = []


def _round_up(value: float, step: int = 64) -> int:
    return int(math.ceil(value / step) * step)


def token_advice(results: Sequence[SampleResult], role: str, task: TaskSpec, pricing: PricingTable, *,
                 configuration: str | None = None, monthly_requests: float) -> TokenAdvice | None:
    """The advice for one role of one configuration's results (None when nothing was called)."""
    responses = [r.calls[role].response for r in results]
    called = [response for response in responses if response is not None and response.mode != "log"]
    if not called:
        return None
    model = called[0].model or results[0].calls[role].request.model
    settings = task.models.role(role)
    rates = pricing.price_for(results[0].calls[role].request.model)
    per_output_token = rates.output * 1e-6
    output = np.array([response.usage.output_tokens for response in called], dtype=float)
    visible = np.array([count_tokens(response.text) for response in called], dtype=float)
    thinking = np.array([max(0.0, o - v) if response.thought else 0.0
                         for o, v, response in zip(output, visible, called, strict=True)])
    truncated = sum(1 for response in called if response.stop_reason == "max_tokens")
    share = truncated / len(called)
    if share > CUT_OFF_SHARE:  # too many answers are cut off: more room, whatever the quantiles say
        cap = min(_round_up(settings.max_tokens * 1.5), 128_000)
    elif truncated:  # a few cut off, within the allowance: the budget is about right
        cap = settings.max_tokens
    else:  # the 99.5th percentile, rounded up: cuts off at most 0.5% of answers like these
        cap = min(_round_up(float(np.quantile(output, 1 - CUT_OFF_SHARE)) + 1), settings.max_tokens)
    beyond = float(np.mean(np.clip(output - cap, 0, None)))
    unread: list[FieldCost] = []
    if task.output.kind == "classification":
        answers = [r.answers[role] for r in results if r.answers[role].ok]
        for name in task.output.fields:  # extra fields: no metric, routing rule or gate reads them
            tokens = [count_tokens(json.dumps({name: answer.fields.get(name)})) - 2 for answer in answers
                      if name in answer.fields]
            if tokens:
                mean = float(np.mean(tokens))
                unread.append(FieldCost(name=name, mean_tokens=mean,
                                        usd_per_month=mean * per_output_token * monthly_requests))
    advice = []
    if share > CUT_OFF_SHARE:
        advice.append(f"{truncated} of {len(called)} answers hit max_tokens = {settings.max_tokens}: raise "
                      "it "
                      f"to about {cap} (or lower the effort) so they are not cut off")
    elif truncated:
        advice.append(f"{truncated} of {len(called)} answers hit max_tokens = {settings.max_tokens} "
                      f"({100 * share:.1f}%, within the {100 * CUT_OFF_SHARE:.1f}% allowance): keep it, or "
                      "raise "
                      "it if those answers matter")
    elif cap < settings.max_tokens:
        advice.append(f"max_tokens = {cap} would have cut off none of these answers (now "
                      f"{settings.max_tokens});"
                      " it bounds the cost of a runaway answer")
    for item in unread:
        advice.append(f"the '{item.name}' field costs about {item.mean_tokens:.0f} output tokens per answer "
                      f"and no metric reads it: dropping it saves about ${item.usd_per_month:,.2f} a month")
    mean_output = float(np.mean(output))
    if mean_output and float(np.mean(thinking)) / mean_output > 0.5:
        lower = "thinking: disabled" if settings.effort == "low" else "a lower effort"
        advice.append(f"thinking is about {100 * float(np.mean(thinking)) / mean_output:.0f}% of the output "
                      f"tokens (effort: {settings.effort or 'the model default'}): {lower} is worth trying "
                      "as a "
                      "candidate configuration of its own")
    return TokenAdvice(
        role=role, configuration=configuration, model=str(model), n=len(called),
        output_p50=float(np.quantile(output, 0.5)), output_p95=float(np.quantile(output, 0.95)),
        output_p99=float(np.quantile(output, 0.99)), mean_output=mean_output,
        mean_thinking=float(np.mean(thinking)),
        thinking_share=float(np.mean(thinking)) / mean_output if mean_output else 0.0,
        max_tokens=settings.max_tokens, truncated=truncated, suggested_max_tokens=cap,
        cap_saving_usd_per_month=beyond * per_output_token * monthly_requests, unread_fields=unread,
        advice=advice)
