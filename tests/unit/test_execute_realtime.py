"""execute_realtime against the fake provider: cache first, dedup, bounded concurrency, warm-up, budget
stop, fatal and per-request errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from evalkit.errors import AuthError, ModelNotFoundError, ProviderError
from evalkit.prompts.render import ModelRequest
from evalkit.providers.base import ModelResponse
from evalkit.providers.execute import CallResult, ExecutionStats, execute_realtime
from evalkit.providers.response_cache import ResponseCache
from tests.fakes import FakeProvider, Received, json_message
from tests.unit.helpers import CANDIDATE, REFERENCE, request, requests


def _run(reqs: list[ModelRequest], provider: FakeProvider, cache: ResponseCache, concurrency: int = 4,
         **kwargs: Any) -> tuple[list[CallResult], ExecutionStats]:
    return asyncio.run(execute_realtime(reqs, provider, cache, concurrency=concurrency, **kwargs))


def _label_by_sample(received: Received) -> dict[str, object]:
    """Answers that differ per request, so a mixed-up answer would show."""
    number = int(received.user_text.split()[-1])
    return json_message(received, category="billing" if number % 2 else "technical", confidence=number / 100)


def test_a_warm_cache_answers_everything_without_a_single_call(cache: ResponseCache) -> None:
    first = FakeProvider(_label_by_sample)
    cold, cold_stats = _run(requests(6), first, cache)
    assert len(first.history) == 12 and cold_stats.requests_sent == 12 and cold_stats.cache_hits == 0

    second = FakeProvider(_label_by_sample)
    warm, stats = _run(requests(6), second, cache)
    assert second.history == [] and stats.requests_sent == 0 and stats.cache_hits == 12
    assert all(result.from_cache and result.error is None for result in warm)
    assert [r.response.text for r in warm] == [r.response.text for r in cold]  # type: ignore[union-attr]


def test_another_endpoint_does_not_read_the_cache(cache: ResponseCache) -> None:
    _run(requests(3), FakeProvider(), cache)
    other = FakeProvider(endpoint="fake:other")
    _run(requests(3), other, cache)
    assert len(other.history) == 6


def test_identical_requests_are_sent_once_and_each_gets_its_answer(cache: ResponseCache) -> None:
    batch = [request(1), request(2), request(1), request(1), request(2, REFERENCE), request(1, replicate=1)]
    provider = FakeProvider(_label_by_sample)
    results, stats = _run(batch, provider, cache)
    sent = [(r.request.sample_id, r.model, r.request.replicate) for r in provider.history]  # type: ignore[union-attr]
    assert sorted(sent) == sorted([("s1", CANDIDATE, 0), ("s2", CANDIDATE, 0), ("s2", REFERENCE, 0),
                                   ("s1", CANDIDATE, 1)])  # a replicate is a deliberate second ask
    assert stats.deduplicated == 2 and stats.requests_sent == 4
    assert [r.request for r in results] == batch  # one result per request, in order
    texts = [r.response.text for r in results]  # type: ignore[union-attr]
    assert texts[0] == texts[2] == texts[3] and json.loads(texts[1])["category"] == "technical"


@pytest.mark.parametrize("concurrency", [1, 3, 7])
def test_concurrency_limit_is_reached_and_never_exceeded(cache: ResponseCache, concurrency: int) -> None:
    provider = FakeProvider(latency_s=0.001)
    _run(requests(10), provider, cache, concurrency=concurrency)
    assert len(provider.history) == 20
    assert provider.max_in_flight == concurrency


def test_warmup_sends_one_request_per_model_alone_before_the_rest(cache: ResponseCache) -> None:
    provider = FakeProvider(latency_s=0.001)
    _run(requests(5), provider, cache, concurrency=8, warmup=True)
    first_two = provider.history[:2]
    assert {r.model for r in first_two} == {CANDIDATE, REFERENCE}
    # Both warm-up calls ended before any other call started.
    starts = [index for kind, index in provider.events if kind == "start"]
    ends_before_third_start = provider.events[:provider.events.index(("start", starts[2]))]
    assert ("end", 0) in ends_before_third_start and ("end", 1) in ends_before_third_start
    assert len(provider.history) == 10 and provider.max_in_flight == 8


def test_without_warmup_everything_goes_out_at_once(cache: ResponseCache) -> None:
    provider = FakeProvider(latency_s=0.001)
    _run(requests(5), provider, cache, concurrency=8)
    starts = [index for kind, index in provider.events[:3]]
    assert [kind for kind, _ in provider.events[:3]] == ["start"] * 3 and len(set(starts)) == 3


def test_the_budget_callback_stops_sending_and_reports_the_rest_as_not_sent(tmp_path: Path) -> None:
    paid: list[ModelResponse] = []

    def budget(_: ModelRequest, response: ModelResponse) -> bool:
        paid.append(response)
        return len(paid) < 3  # the third answer reaches the budget

    provider = FakeProvider()
    with ResponseCache(tmp_path / "cache") as cache:
        results, stats = _run(requests(5), provider, cache, concurrency=1, on_response=budget)
        assert len(cache) == 3  # what was paid for is kept
    assert len(provider.history) == 3 and len(paid) == 3
    answered = [r for r in results if r.response is not None]
    unsent = [r for r in results if r.error is not None]
    assert len(answered) == 3 and len(unsent) == 7 and stats.errors == 7
    assert all("not sent" in r.error.message and "budget" in r.error.message for r in unsent)  # type: ignore[union-attr]


def test_budget_stop_with_parallel_calls_sends_only_what_was_already_in_flight(cache: ResponseCache) -> None:
    provider = FakeProvider(latency_s=0.001)
    results, _ = _run(requests(20), provider, cache, concurrency=4, on_response=lambda _r, _a: False)
    assert len(provider.history) == 4  # the first answer stopped it; only the calls already out finished
    assert sum(r.response is not None for r in results) == len(provider.history)


@pytest.mark.parametrize("fatal", [AuthError("key rejected", status=401),
                                   ModelNotFoundError("no such model", status=404)])
def test_a_fatal_error_aborts_the_run(cache: ResponseCache, fatal: ProviderError) -> None:
    provider = FakeProvider()
    provider.fail(fatal, call=2)
    with pytest.raises(type(fatal)) as caught:
        _run(requests(10), provider, cache, concurrency=1)
    assert caught.value is fatal
    # The call waiting for the freed concurrency slot may start before the run is torn down; nothing else.
    assert 2 <= len(provider.history) <= 2 + 1
    assert provider.billed == [provider.history[0], *provider.history[2:]]


def test_a_non_fatal_error_is_recorded_for_its_request_only(tmp_path: Path) -> None:
    error = ProviderError("overloaded after retries", status=529, retryable=True)
    provider = FakeProvider()
    provider.fail(error, when=lambda r: r.user_text.endswith(" 3") and r.model == REFERENCE)
    with ResponseCache(tmp_path / "cache") as cache:
        results, stats = _run(requests(6), provider, cache)
        failed = [r for r in results if r.error is not None]
        assert [(r.request.sample_id, r.request.model) for r in failed] == [("s3", REFERENCE)]
        assert failed[0].error is error and failed[0].response is None
        assert stats.errors == 1 and stats.requests_sent == 12 and len(provider.billed) == 11

        # Errors are never cached: the next run sends exactly the failed request again.
        again = FakeProvider()
        results, stats = _run(requests(6), again, cache)
    assert [(r.request.sample_id, r.model) for r in again.history] == [("s3", REFERENCE)]  # type: ignore[union-attr]
    assert stats.cache_hits == 11 and all(r.error is None for r in results)


def test_read_only_cache_refuses_before_any_call(tmp_path: Path) -> None:
    from evalkit.errors import CacheError

    with ResponseCache(tmp_path / "cache") as cache:
        _run(requests(2), FakeProvider(), cache)
    provider = FakeProvider()
    with ResponseCache(tmp_path / "cache", "read-only") as cache, pytest.raises(CacheError):
        _run(requests(3), provider, cache)
    assert provider.history == []
