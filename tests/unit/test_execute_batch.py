"""execute_batch against the fake provider: the crash-safe ledger, re-attachment, reconciliation of failed
items, the real-time fallback, --max-wait, the warm-up batch and chunking. Polling costs no time."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from evalkit.config import BatchSettings
from evalkit.errors import AuthError, BatchPendingError
from evalkit.prompts.render import ModelRequest
from evalkit.providers.batching import BatchLedger, Fallback, custom_id_for, execute_batch
from evalkit.providers.response_cache import ResponseCache, request_key
from tests.fakes import CANCELED, EXPIRED, SUCCEEDED, FakeProvider, Outcome, Received, errored
from tests.unit.helpers import CANDIDATE, REFERENCE, Crash, Result, no_sleep, requests


def _run(reqs: list[ModelRequest], provider: FakeProvider, cache: ResponseCache, ledger: BatchLedger, *,
         max_wait_s: float | None = None, fallback: Fallback = "none", warmup: bool = False,
         **settings: Any) -> Result:
    work = execute_batch(reqs, provider, cache, ledger, BatchSettings(**settings), max_wait_s=max_wait_s,
                         fallback=fallback, sleep=no_sleep, warmup=warmup)
    return asyncio.run(work)


def _bodies(received: list[Received]) -> Counter[str]:
    return Counter(f"{r.model}/{r.user_text}" for r in received)


def test_answers_arrive_through_one_batch_and_are_cached(cache: ResponseCache, ledger: BatchLedger) -> None:
    provider = FakeProvider(batch_polls=3)
    results, stats, report = _run(requests(4), provider, cache, ledger)
    assert provider.submissions == 1 and provider.calls["poll"] == 4  # 3 in progress, then ended
    assert all(r.response is not None and r.response.mode == "batch" for r in results)
    assert {r.response.batch_id for r in results} == {"msgbatch_fake0001"}  # type: ignore[union-attr]
    assert report.submitted_items == 8 and stats.requests_sent == 8 and len(cache) == 8
    # The preflight: one free token count per model, before anything is submitted.
    assert [(r.mode, r.model) for r in provider.history[:2]] == [("count_tokens", CANDIDATE),
                                                                 ("count_tokens", REFERENCE)]
    again = FakeProvider()
    results, stats, _ = _run(requests(4), again, cache, ledger)
    assert again.history == [] and stats.cache_hits == 8 and all(r.from_cache for r in results)


def test_a_rejected_key_is_caught_by_the_preflight_before_any_submission(cache: ResponseCache,
                                                                         ledger: BatchLedger) -> None:
    provider = FakeProvider()
    provider.fail(AuthError("invalid x-api-key", status=401), on="count_tokens", call=1)
    with pytest.raises(AuthError):
        _run(requests(3), provider, cache, ledger)
    assert provider.submissions == 0 and ledger.records(provider.endpoint) == []


def test_the_ledger_says_submitting_before_the_create_call(cache: ResponseCache, ledger: BatchLedger) -> None:
    seen: list[tuple[str, str | None, set[str]]] = []
    provider = FakeProvider()

    def inspect(items: list[tuple[str, dict[str, Any]]]) -> None:
        records = ledger.records(provider.endpoint)
        assert len(records) == 1
        seen.append((records[0].state, records[0].batch_id, set(records[0].items)))
        assert set(records[0].items) == {custom_id for custom_id, _ in items}
        # The run-unique marker is in the ledger before the call, and starts every custom_id sent.
        assert len(records[0].nonce) == 10 and all(c.startswith(records[0].nonce + "-") for c, _ in items)

    provider.on_submit = inspect
    reqs = requests(3)
    _run(reqs, provider, cache, ledger)
    nonce = ledger.records(provider.endpoint)[0].nonce
    keys = {custom_id_for(r, request_key(provider.endpoint, r), nonce) for r in reqs}
    assert seen == [("submitting", None, keys)]
    [record] = ledger.records(provider.endpoint)
    assert record.state == "collected" and record.batch_id == "msgbatch_fake0001"
    assert set(record.outcomes.values()) == {"succeeded"}


def test_a_run_killed_while_polling_reattaches_instead_of_resubmitting(cache: ResponseCache,
                                                                       ledger: BatchLedger) -> None:
    provider = FakeProvider(batch_polls=2)
    provider.fail(Crash(), on="poll", call=1)
    with pytest.raises(Crash):
        _run(requests(5), provider, cache, ledger)
    [record] = ledger.records(provider.endpoint)
    assert record.state == "submitted" and record.batch_id == "msgbatch_fake0001"

    results, _, report = _run(requests(5), provider, cache, ledger)
    assert provider.submissions == 1 and report.reattached == ["msgbatch_fake0001"]
    assert report.submitted_items == 0
    assert all(r.response is not None for r in results)
    assert _bodies(provider.billed) == _bodies(provider.sent("batch"))  # each item billed once
    assert len(provider.billed) == 10


def test_a_create_that_landed_before_the_crash_is_adopted(cache: ResponseCache, ledger: BatchLedger) -> None:
    provider = FakeProvider()
    provider.fail(Crash(), on="submitted", call=1)  # the batch exists; its id never reached the ledger
    with pytest.raises(Crash):
        _run(requests(4), provider, cache, ledger)
    assert [r.state for r in ledger.records(provider.endpoint)] == ["submitting"]

    results, _, report = _run(requests(4), provider, cache, ledger)
    assert provider.submissions == 1 and len(provider.batches) == 1
    assert report.reattached == ["msgbatch_fake0001"] and report.submitted_items == 0
    assert all(r.response is not None for r in results) and len(provider.billed) == 8


def test_a_create_that_never_landed_is_submitted_again(cache: ResponseCache, ledger: BatchLedger) -> None:
    provider = FakeProvider()
    provider.fail(Crash(), on="submit", call=1)  # died before the API created anything
    with pytest.raises(Crash):
        _run(requests(4), provider, cache, ledger)
    # The create has settled (create_settle_s after it was sent) and its batch is not in the list.
    results, _, report = _run(requests(4), provider, cache, ledger, create_settle_s=0)
    assert provider.submissions == 2 and len(provider.batches) == 1
    assert report.reattached == [] and report.submitted_items == 8
    assert sorted(r.state for r in ledger.records(provider.endpoint)) == ["collected", "never_submitted"]
    assert all(r.response is not None for r in results)


@pytest.mark.parametrize("failure", [errored("api_error"), errored("overloaded_error"), EXPIRED, CANCELED])
def test_failed_items_are_resubmitted_until_answered(cache: ResponseCache, ledger: BatchLedger,
                                                     failure: Outcome) -> None:
    # Sample 1's items fail on their first two submissions, sample 2's on the first; the rest succeed.
    def outcome(item: Received) -> Outcome:
        failures = {"ticket number 1": 2, "ticket number 2": 1}.get(item.user_text, 0)
        return failure if item.occurrence < failures else SUCCEEDED

    provider = FakeProvider(outcome=outcome)
    results, stats, report = _run(requests(4), provider, cache, ledger, max_attempts=3)
    assert all(r.error is None and r.response is not None for r in results)
    assert [len(b.items) for b in provider.batches.values()] == [8, 4, 2]
    assert report.failed_items == {failure.kind: 6} and report.resubmitted_items == 6
    assert report.given_up == 0 and stats.errors == 0
    assert len(provider.billed) == 8 and len(set(_bodies(provider.billed))) == 8


def test_items_are_given_up_after_max_attempts(cache: ResponseCache, ledger: BatchLedger) -> None:
    provider = FakeProvider(outcome=lambda item: EXPIRED if item.user_text.endswith(" 0") else SUCCEEDED)
    results, stats, report = _run(requests(3), provider, cache, ledger, max_attempts=2)
    assert provider.submissions == 2 and [len(b.items) for b in provider.batches.values()] == [6, 2]
    given_up = [r for r in results if r.error is not None]
    assert [r.request.sample_id for r in given_up] == ["s0", "s0"]
    assert all("after 2 batch submission(s)" in r.error.message for r in given_up)  # type: ignore[union-attr]
    assert report.given_up == 2 and stats.errors == 2 and len(provider.billed) == 4
    assert provider.sent("realtime") == []  # no --fallback: nothing is finished in real time


def test_non_retryable_errors_are_final_after_one_submission(cache: ResponseCache,
                                                              ledger: BatchLedger) -> None:
    provider = FakeProvider(outcome=lambda item: errored("invalid_request_error")
                            if item.user_text.endswith(" 1") and item.model == REFERENCE else SUCCEEDED)
    results, stats, report = _run(requests(3), provider, cache, ledger, max_attempts=3)
    assert provider.submissions == 1
    [failed] = [r for r in results if r.error is not None]
    assert (failed.request.sample_id, failed.request.model) == ("s1", REFERENCE)
    assert failed.error.error_type == "invalid_request_error"  # type: ignore[union-attr]
    assert report.resubmitted_items == 0 and stats.errors == 1 and len(provider.billed) == 5


def test_fallback_realtime_finishes_the_leftovers(cache: ResponseCache, ledger: BatchLedger) -> None:
    provider = FakeProvider(outcome=lambda item: EXPIRED)
    results, stats, report = _run(requests(3), provider, cache, ledger, max_attempts=1, fallback="realtime")
    assert all(r.response is not None and r.response.mode == "realtime" for r in results)
    assert report.fallback_realtime == 6 and report.given_up == 0 and stats.errors == 0
    assert len(provider.sent("batch")) == 6 and len(provider.sent("realtime")) == 6
    assert {r.mode for r in provider.billed} == {"realtime"}


def test_max_wait_stops_resumably_and_the_next_call_submits_nothing(cache: ResponseCache,
                                                                    ledger: BatchLedger) -> None:
    provider = FakeProvider(batch_polls=5)
    with pytest.raises(BatchPendingError) as caught:
        _run(requests(4), provider, cache, ledger, max_wait_s=0)
    assert caught.value.batch_ids == ["msgbatch_fake0001"]
    assert "run the same command again" in caught.value.message
    assert provider.billed == [] and len(cache) == 0
    assert [r.state for r in ledger.records(provider.endpoint)] == ["submitted"]

    results, _, report = _run(requests(4), provider, cache, ledger)
    assert provider.submissions == 1 and report.reattached == ["msgbatch_fake0001"]
    assert report.submitted_items == 0 and all(r.response is not None for r in results)
    assert len(provider.billed) == 8


def test_the_warmup_batch_goes_first_and_ends_before_the_rest(cache: ResponseCache,
                                                               ledger: BatchLedger) -> None:
    provider = FakeProvider(batch_polls=1)
    statuses: list[list[str]] = []
    provider.on_submit = lambda items: statuses.append([b.status for b in provider.batches.values()])
    results, _, report = _run(requests(4), provider, cache, ledger, warmup=True)
    first, second = provider.batches.values()
    assert sorted(item.model for item in first.items) == [CANDIDATE, REFERENCE]
    assert len(second.items) == 6 and not _bodies(first.items) & _bodies(second.items)
    assert statuses == [[], ["ended"]]  # the rest is submitted only once the warm-up has ended
    assert report.warmup_items == 2 and all(r.response is not None for r in results)


def test_no_warmup_batch_when_each_request_is_its_models_first(cache: ResponseCache,
                                                               ledger: BatchLedger) -> None:
    provider = FakeProvider()
    _run(requests(1), provider, cache, ledger, warmup=True)
    assert len(provider.batches) == 1


def test_chunks_respect_max_requests(cache: ResponseCache, ledger: BatchLedger) -> None:
    provider = FakeProvider()
    results, _, report = _run(requests(4, models=(CANDIDATE,)) + requests(3, models=(REFERENCE,)), provider,
                              cache, ledger, max_requests=3)
    assert [len(b.items) for b in provider.batches.values()] == [3, 3, 1]
    assert len(set(_bodies(provider.sent("batch")))) == 7  # every request in exactly one batch
    assert len(ledger.records(provider.endpoint)) == 3 and all(r.response is not None for r in results)
    assert report.submitted_items == 7
