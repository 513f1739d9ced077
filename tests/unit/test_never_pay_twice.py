"""Issue 16 on the fake provider: the exact fault sequences behind each way evalkit could pay twice, and
what it does instead. Billing is counted at the fake (``billed``: what the API would charge for)."""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from evalkit.config import BatchSettings
from evalkit.errors import ProviderError, StateError
from evalkit.prompts.render import ModelRequest
from evalkit.providers.batching import BatchLedger, execute_batch
from evalkit.providers.execute import CallResult, ExecutionStats, execute_realtime
from evalkit.providers.response_cache import ResponseCache, forget_tallies, request_key
from tests.fakes import FakeProvider, Received
from tests.unit.helpers import Crash, Result, no_sleep, requests


def _batch(reqs: list[ModelRequest], provider: FakeProvider, cache: ResponseCache, ledger: BatchLedger,
           **settings: Any) -> Result:
    return asyncio.run(execute_batch(reqs, provider, cache, ledger, BatchSettings(**settings),
                                     sleep=no_sleep, warmup=settings.pop("warmup", False)))


def _double_billed(received: list[Received]) -> int:
    counts = Counter(json.dumps([r.params, r.request.replicate if r.request else 0], sort_keys=True)
                     for r in received)
    return sum(count - 1 for count in counts.values())


def _gateway_timeout() -> ProviderError:
    return ProviderError("API error 504 timeout_error: Gateway timeout", status=504, retryable=True,
                         maybe_billed=True)


def _timed_out() -> ProviderError:
    return ProviderError("request timed out after 1 s", retryable=True, maybe_billed=True, timed_out=True)


# -- batch create exactly once ---------------------------------------------------------------------------
def test_a_create_that_fails_after_the_batch_was_created_is_found_by_its_marker(cache: ResponseCache,
                                                                                 ledger: BatchLedger) -> None:
    provider = FakeProvider(batch_polls=1)
    provider.fail(_gateway_timeout(), on="submitted")  # the batch exists; its id never arrived
    results, _, report = _batch(requests(5), provider, cache, ledger)
    assert provider.submissions == 1 and len(provider.batches) == 1  # no second create
    assert all(r.response is not None for r in results)
    assert _double_billed(provider.billed) == 0 and len(provider.billed) == 10
    assert report.create_errors == 1 and report.verified == ["msgbatch_fake0001"] and report.not_ours == []
    [record] = ledger.records(provider.endpoint)
    assert record.state == "collected" and record.batch_id == "msgbatch_fake0001"
    assert "504" in str(record.error)


def test_somebody_elses_batch_of_the_same_size_and_time_is_never_adopted(cache: ResponseCache,
                                                                         ledger: BatchLedger) -> None:
    provider = FakeProvider()
    provider.fail(Crash(), on="submit")  # died during the create; it never reached the API
    with pytest.raises(Crash):
        _batch(requests(3), provider, cache, ledger)
    # Meanwhile a colleague in the same workspace submits a batch of the same size.
    foreign = [(f"theirs-{i}", {"model": "claude-haiku-5-5", "max_tokens": 5,
                                "messages": [{"role": "user", "content": f"x{i}"}]}) for i in range(6)]
    theirs = asyncio.run(provider.submit_batch(foreign)).id

    results, _, report = _batch(requests(3), provider, cache, ledger, create_settle_s=0)
    assert report.not_ours == [theirs] and report.reattached == [] and provider.calls.get("cancel", 0) == 0
    assert all(r.response is not None and r.response.batch_id != theirs for r in results)
    ours = [b for b in provider.batches.values() if b.id != theirs]
    assert len(ours) == 1 and _double_billed([r for r in provider.billed if r.batch_id != theirs]) == 0
    states = sorted(r.state for r in ledger.records(provider.endpoint))
    assert states == ["collected", "never_submitted"]


def test_a_definite_refusal_marks_the_record_failed_and_guesses_nothing(cache: ResponseCache,
                                                                        ledger: BatchLedger) -> None:
    provider = FakeProvider()
    provider.fail(ProviderError("API error 413 request_too_large", status=413), on="submit")
    with pytest.raises(ProviderError, match="413"):
        _batch(requests(3), provider, cache, ledger)
    [record] = ledger.records(provider.endpoint)
    assert record.state == "failed" and "413" in str(record.error)
    asyncio.run(provider.submit_batch([(f"theirs-{i}", {"model": "m"}) for i in range(6)]))  # same size
    results, _, report = _batch(requests(3), provider, cache, ledger)
    assert provider.calls.get("list", 0) == 0  # a failed record is not looked for in the list
    assert report.not_ours == [] and all(r.response is not None for r in results)


def test_a_rate_limited_create_is_tried_again_under_a_new_marker(cache: ResponseCache,
                                                                 ledger: BatchLedger) -> None:
    provider = FakeProvider()
    provider.fail(ProviderError("API error 429 rate_limit_error", status=429, retryable=True), on="submit")
    results, _, report = _batch(requests(3), provider, cache, ledger)
    assert provider.submissions == 2 and len(provider.batches) == 1 and report.create_errors == 1
    records = ledger.records(provider.endpoint)
    assert sorted(r.state for r in records) == ["collected", "failed"]
    assert len({r.nonce for r in records}) == 2
    assert all(r.response is not None for r in results) and len(provider.billed) == 6


def test_creates_that_keep_failing_stop_the_run_with_exit_4_after_the_configured_tries(
        cache: ResponseCache, ledger: BatchLedger) -> None:
    provider = FakeProvider()
    provider.fail(ProviderError("API error 500 api_error", status=500, retryable=True), on="submit",
                  times=None)
    with pytest.raises(ProviderError, match="could not create a batch") as caught:
        _batch(requests(2), provider, cache, ledger, create_retries=2, create_settle_s=0)
    assert caught.value.exit_code == 4 and provider.submissions == 3 and provider.billed == []


def test_a_batch_that_shows_up_late_is_used_and_the_duplicate_cancelled(cache: ResponseCache,
                                                                        ledger: BatchLedger) -> None:
    # The list does not show the first batch yet when the run looks for it after the 504; the run
    # submits again, then finds the first one after all: it proves ours, and the second is cancelled.
    provider = FakeProvider(batch_polls=[0, 5], list_lag=1)
    provider.fail(_gateway_timeout(), on="submitted", call=1)
    results, _, report = _batch(requests(4), provider, cache, ledger, create_settle_s=0)
    first, second = provider.batches
    assert report.verified == [first] and report.canceled_duplicates == [second]
    assert provider.batches[second].cancel_requested
    assert all(r.response is not None and r.response.batch_id == first for r in results)
    assert _double_billed(provider.billed) == 0 and len(provider.billed) == 8
    assert report.duplicate_items == 0


def test_a_create_still_in_flight_when_the_next_run_looks_is_waited_for_not_resubmitted(
        cache: ResponseCache, ledger: BatchLedger) -> None:
    # The process died during a slow create; the next run starts before the batch is in the list (the
    # list shows it only on its fourth look): the record keeps looking until the create settles.
    provider = FakeProvider(list_lag=3)
    provider.fail(Crash(), on="submitted")
    with pytest.raises(Crash):
        _batch(requests(3), provider, cache, ledger)
    results, _, report = _batch(requests(3), provider, cache, ledger, create_settle_s=60)
    assert provider.submissions == 1 and report.reattached == ["msgbatch_fake0001"]
    assert all(r.response is not None for r in results) and _double_billed(provider.billed) == 0
    assert provider.calls["list"] == 4


def test_a_crash_during_the_warmup_create_does_not_skip_the_warmup(cache: ResponseCache,
                                                                   ledger: BatchLedger) -> None:
    provider = FakeProvider(batch_polls=1)
    provider.fail(Crash(), on="submitted", call=1)  # the warm-up batch exists; the process died
    with pytest.raises(Crash):
        _batch(requests(4), provider, cache, ledger, warmup=True)
    statuses: list[list[str]] = []
    provider.on_submit = lambda items: statuses.append([b.status for b in provider.batches.values()])
    results, _, report = _batch(requests(4), provider, cache, ledger, warmup=True)
    warm, rest = provider.batches.values()
    assert len(warm.items) == 2 and len(rest.items) == 6
    assert statuses == [["ended"]]  # the rest went out only once the (re-attached) warm-up had ended
    assert report.warmup_items == 2 and report.reattached == [warm.id]
    assert all(r.response is not None for r in results) and _double_billed(provider.billed) == 0


# -- the ledger: damage is an error with a fix, never a resubmission -------------------------------------
def _pending_batch(provider: FakeProvider, cache: ResponseCache, ledger: BatchLedger) -> Path:
    provider.fail(Crash(), on="poll", call=1)
    with pytest.raises(Crash):
        _batch(requests(3), provider, cache, ledger)
    [path] = ledger.record_files()
    return path


@pytest.mark.parametrize("damage", [
    lambda text: text[:50],  # truncated
    lambda text: json.dumps({**json.loads(text), "owner": "someone"}),  # unexpected key
    lambda text: json.dumps({**json.loads(text), "state": "half-done"}),
    lambda text: "\xff\xfe" + text,
])
def test_a_damaged_ledger_record_stops_the_run_and_repair_restores_it(
        cache: ResponseCache, ledger: BatchLedger, damage: Any) -> None:
    provider = FakeProvider(batch_polls=1)
    path = _pending_batch(provider, cache, ledger)
    path.write_text(damage(path.read_text()), encoding="utf-8")
    with pytest.raises(StateError) as caught:
        _batch(requests(3), provider, cache, ledger)
    assert str(path) in caught.value.message and "evalkit cache repair" in str(caught.value.hint)
    assert caught.value.exit_code == 2 and provider.submissions == 1  # nothing was submitted again

    assert [p for p, _ in ledger.verify()] == [path]
    [done] = ledger.repair()
    assert "restored" in done and ledger.verify() == []
    results, _, report = _batch(requests(3), provider, cache, ledger)
    assert report.reattached == ["msgbatch_fake0001"] and provider.submissions == 1
    assert all(r.response is not None for r in results) and _double_billed(provider.billed) == 0


def test_a_record_the_journal_cannot_restore_is_set_aside_not_deleted(cache: ResponseCache,
                                                                       ledger: BatchLedger) -> None:
    provider = FakeProvider(batch_polls=1)
    path = _pending_batch(provider, cache, ledger)
    path.write_text("{")
    (ledger.directory / "journal.jsonl").write_text("")
    [done] = ledger.repair()
    assert "set" in done and "aside" in done and (ledger.directory / "damaged" / path.name).exists()
    assert ledger.verify() == []


# -- the response cache: checksummed values ----------------------------------------------------------------
def test_a_damaged_cache_value_is_an_error_not_a_miss(tmp_path: Path) -> None:
    reqs = requests(2)
    with ResponseCache(tmp_path / "cache") as cache:
        asyncio.run(execute_realtime(reqs, FakeProvider(), cache, concurrency=2))
        key = request_key("fake:provider", reqs[0])
        stored = cache._store.get(key)
        stored["value"]["message"]["content"][0]["text"] = '{"category": "technical"}'  # tampered
        cache._store.set(key, stored)
        assert not cache.verify().ok and cache.verify().damaged == [key]
        provider = FakeProvider()
        with pytest.raises(StateError, match="damaged response cache entry") as caught:
            asyncio.run(execute_realtime(reqs, provider, cache, concurrency=2))
        assert "evalkit cache verify" in str(caught.value.hint) and provider.history == []


def test_values_written_before_checksums_are_still_read(tmp_path: Path) -> None:
    reqs = requests(1)
    with ResponseCache(tmp_path / "cache") as cache:
        [first], _ = asyncio.run(execute_realtime(reqs[:1], FakeProvider(), cache, concurrency=1))
        assert first.response is not None
        cache._store.set(request_key("fake:provider", reqs[0]), first.response.to_cache())  # format 1
        provider = FakeProvider()
        [again], stats = asyncio.run(execute_realtime(reqs[:1], provider, cache, concurrency=1))
        assert again.from_cache and provider.history == [] and cache.verify().legacy == 1


# -- real time: timeouts, retries, concurrency -------------------------------------------------------------
def test_a_retry_after_a_timeout_is_counted_as_possibly_billed_twice(cache: ResponseCache) -> None:
    provider = FakeProvider()
    provider.fail(_timed_out(), call=2, billed=True)  # answered and billed; the client gave up
    results, stats = asyncio.run(execute_realtime(requests(3), provider, cache, concurrency=1,
                                                  max_retries=3, sleep=no_sleep))
    assert all(r.response is not None for r in results)
    assert _double_billed(provider.billed) == 1  # the API really billed it twice ...
    assert stats.possibly_billed_twice == 1 and stats.timeouts == 1 and stats.retries == 1  # ... said so
    assert [r.maybe_billed for r in results] == [0, 1, 0, 0, 0, 0]


def test_errors_that_cannot_have_been_billed_are_retried_without_being_counted(cache: ResponseCache) -> None:
    provider = FakeProvider()
    provider.fail(ProviderError("API error 529 overloaded_error", status=529, retryable=True), times=3)
    results, stats = asyncio.run(execute_realtime(requests(2), provider, cache, concurrency=2, max_retries=3,
                                                  sleep=no_sleep))
    assert all(r.response is not None for r in results) and stats.retries == 3
    assert stats.possibly_billed_twice == 0 and len(provider.billed) == 4


def test_a_timed_out_attempt_keeps_its_slot_so_the_server_never_sees_more_than_the_limit(
        cache: ResponseCache) -> None:
    # The server keeps working on each abandoned attempt for 20 ms; evalkit holds the slot 30 ms.
    provider = FakeProvider(latency_s=0.002, timeout_s=0.03)
    provider.fail(_timed_out(), times=6, billed=True, server_s=0.02)
    results, stats = asyncio.run(execute_realtime(requests(10), provider, cache, concurrency=3,
                                                  max_retries=4, sleep=no_sleep))
    assert all(r.response is not None for r in results) and stats.timeouts == 6
    assert provider.max_in_flight == 3  # live attempts plus abandoned ones still running at the server
    assert stats.possibly_billed_twice == 6 == _double_billed(provider.billed)


def test_the_timeout_is_sized_to_the_request() -> None:
    from evalkit.providers.anthropic import SDK_DEFAULT_TIMEOUT_S, request_timeout

    assert request_timeout(1024) == SDK_DEFAULT_TIMEOUT_S == 600  # the SDK's own default, at least
    assert request_timeout(64_000) == pytest.approx(1800)  # an hour per 128k output tokens, as the SDK
    assert request_timeout(1024, floor_s=1) == pytest.approx(28.8)
    assert request_timeout(1024, floor_s=1, per_output_token_s=0) == 1


# -- processes sharing a cache share the work ----------------------------------------------------------------
def test_two_runs_sharing_a_cache_pay_for_each_answer_once(tmp_path: Path) -> None:
    provider = FakeProvider(latency_s=0.003)

    async def both() -> list[tuple[list[CallResult], ExecutionStats]]:
        with ResponseCache(tmp_path / "cache") as one, ResponseCache(tmp_path / "cache") as two:
            return list(await asyncio.gather(
                execute_realtime(requests(12), provider, one, concurrency=4, claim_poll_s=0.001),
                execute_realtime(requests(12), provider, two, concurrency=4, claim_poll_s=0.001)))

    (first, first_stats), (second, second_stats) = asyncio.run(both())
    assert len(provider.billed) == 24 and _double_billed(provider.billed) == 0
    assert first_stats.requests_sent + second_stats.requests_sent == 24
    assert first_stats.shared + second_stats.shared == 24
    assert [r.response.text for r in first] == [r.response.text for r in second]  # type: ignore[union-attr]


def test_a_claim_is_released_when_its_holder_dies_and_its_in_flight_mark_counts(cache: ResponseCache,
                                                                                 tmp_path: Path) -> None:
    [req] = requests(1)[:1]
    key = request_key("fake:provider", req)
    dead = FileLock(str(cache.claims_dir / f"{key[:3]}.lock"))
    dead.acquire()  # another process fetching it ...
    (cache.claims_dir / f"{key}.inflight").write_text("4242 2026-12-01T10:00:00\n")  # ... mid-request

    async def later() -> tuple[list[CallResult], ExecutionStats]:
        run = asyncio.create_task(execute_realtime([req], FakeProvider(), cache, concurrency=1,
                                                   claim_poll_s=0.001))
        await asyncio.sleep(0.05)
        assert not run.done()  # waiting for the claim, not paying
        dead.release()  # ... which dies: the OS drops its lock
        return await run

    [result], stats = asyncio.run(later())
    assert result.response is not None and stats.requests_sent == 1
    assert stats.possibly_billed_twice == 1 and result.maybe_billed == 1  # the dead one may have paid
    assert not (cache.claims_dir / f"{key}.inflight").exists()


def test_what_a_killed_run_may_have_paid_twice_is_reported_by_the_next(tmp_path: Path) -> None:
    # A run answered request 0 after a timed-out attempt (a tally), and died with request 1 in flight
    # after one timed-out attempt (a mark saying two attempts may have been billed), before its report.
    reqs = requests(2)
    with ResponseCache(tmp_path / "cache") as cache:
        [done], _ = asyncio.run(execute_realtime(reqs[:1], FakeProvider(), cache, concurrency=1))
        assert done.response is not None
        dead = 99_999_999
        record = {"count": 1, "pid": dead, "model": reqs[0].model, "input_tokens": 50, "max_tokens": 50}
        key0, key1 = (request_key("fake:provider", r) for r in reqs[:2])
        (cache.claims_dir / f"{key0}.{dead}.tally").write_text(json.dumps({**record, "key": key0}))
        (cache.claims_dir / f"{key1}.inflight").write_text(json.dumps({**record, "key": key1, "count": 2}))

        provider = FakeProvider()
        results, stats = asyncio.run(execute_realtime(reqs[:2], provider, cache, concurrency=1))
        assert [r.request.sample_id for r in provider.history] == ["s0"]  # request 1: the reference
        assert stats.possibly_billed_twice == 2 and results[1].maybe_billed == 2  # the mark's two attempts
        orphans = cache.adopt_orphans()  # the pipeline does this after the session
        assert [(o.key, o.count) for o in orphans] == [(key0, 1)]
        assert cache.adopt_orphans() == []  # taken once
        assert list(cache.claims_dir.glob("*.inflight")) == []
        # This run's own count stays on disk until its report holds it.
        assert [p.name for p in cache.claims_dir.glob("*.tally")] == [f"{key1}.{os.getpid()}.tally"]
        forget_tallies(tmp_path / "cache")
        assert list(cache.claims_dir.glob("*.tally")) == []
