"""``results.jsonl``: one typed row per sample — its input, each model's call and answer, the scores."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

from evalkit._typed import Typed
from evalkit.config import PricingTable
from evalkit.cost.totals import result_cost
from evalkit.providers.base import Usage
from evalkit.scoring.answers import Answer
from evalkit.scoring.samples import ROLES, SampleResult


class UsageCounts(Typed):
    """Token counts as billed; ``input_tokens`` excludes cached-prefix tokens (API semantics)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0

    @classmethod
    def of(cls, usage: Usage) -> UsageCounts:
        return cls(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                   cache_read_input_tokens=usage.cache_read_input_tokens,
                   cache_creation_input_tokens=usage.cache_creation_input_tokens,
                   cache_write_5m_tokens=usage.cache_write_5m_tokens,
                   cache_write_1h_tokens=usage.cache_write_1h_tokens)


class CallRow(Typed):
    """One model's call for one sample: what it answered, what that cost, where the answer came from."""

    model: str
    output: str | None
    stop_reason: str | None
    answer: Answer
    usage: UsageCounts
    cost_usd: float
    mode: str | None  # "realtime" | "batch" | "log"
    batch_id: str | None
    request_id: str | None
    from_cache: bool
    error: str | None


class Scores(Typed):
    agree: bool | None
    candidate_correct: bool | None
    reference_correct: bool | None
    #: Extraction and text tasks: the per-sample metric values behind the binary outcomes.
    metric_values: dict[str, float | None] | None = None
    threshold: float | None = None
    judge: bool | None = None


class SampleRow(Typed):
    id: str
    input_hash: str
    text: str
    gold: Any
    segments: dict[str, str]
    candidate: CallRow
    reference: CallRow
    scores: Scores


def sample_row(result: SampleResult, pricing: PricingTable) -> SampleRow:
    calls = {}
    for role in ROLES:
        call, answer = result.calls[role], result.answers[role]
        response = call.response
        calls[role] = CallRow(
            model=call.request.model,
            output=response.text if response is not None else None,
            stop_reason=response.stop_reason if response is not None else None,
            answer=answer,
            usage=UsageCounts.of(result.usage(role)),
            cost_usd=round(result_cost(result, role, pricing).total, 8),
            mode=response.mode if response is not None else None,
            batch_id=response.batch_id if response is not None else None,
            request_id=response.request_id if response is not None else None,
            from_cache=call.from_cache,
            error=call.error.message if call.error is not None else None,
        )
    scored = result.scored
    scores = Scores(agree=scored.agree, candidate_correct=scored.correct("candidate"),
                    reference_correct=scored.correct("reference"))
    if not scored.by_label:
        scores = scores.model_copy(update={"metric_values": scored.primary, "threshold": scored.threshold,
                                           "judge": scored.judge})
    sample = result.sample
    return SampleRow(id=sample.id, input_hash=sample.input_hash, text=sample.text, gold=sample.label,
                     segments=sample.segments, candidate=calls["candidate"], reference=calls["reference"],
                     scores=scores)


class LazyRows(Sequence[SampleRow]):
    """The run's rows, built one at a time from its scored results when read.

    Why not a list: a typed row holds the sample's text and both outputs again (~6 KB each), so a list of
    100k rows is most of a gigabyte; written to ``results.jsonl`` and browsed row by row, none need to be
    alive at once."""

    def __init__(self, results: Sequence[SampleResult], pricing: PricingTable) -> None:
        self._results, self._pricing = results, pricing

    def __len__(self) -> int:
        return len(self._results)

    @overload
    def __getitem__(self, index: int) -> SampleRow: ...

    @overload
    def __getitem__(self, index: slice) -> list[SampleRow]: ...

    def __getitem__(self, index: int | slice) -> SampleRow | list[SampleRow]:
        if isinstance(index, slice):
            return [sample_row(result, self._pricing) for result in self._results[index]]
        return sample_row(self._results[index], self._pricing)

    def __iter__(self) -> Iterator[SampleRow]:
        return (sample_row(result, self._pricing) for result in self._results)
