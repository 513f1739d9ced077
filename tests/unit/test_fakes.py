"""The fake provider itself: its default answers pass evalkit's own parser, and its batches behave like the
API's (in progress for a set number of polls, results only once ended, listed newest first)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from evalkit.errors import ProviderError
from evalkit.scoring.answers import parse_answer
from tests.conftest import prepared_task
from tests.fakes import EXPIRED, SUCCEEDED, FakeProvider, Outcome, Received, errored
from tests.unit.helpers import request


def test_default_answers_are_valid_for_the_shipped_task(project: Path) -> None:
    prepared = prepared_task(project / "tasks" / "triage.yaml", sample_size=3, mode="realtime")
    provider = FakeProvider()
    for req in prepared.requests:
        response = asyncio.run(provider.generate(req))
        answer = parse_answer(response, None, prepared.task.output)
        assert answer.outcome == "ok", answer.reason
        assert answer.label == prepared.task.output.label_names[0] and answer.confidence == 0.9
        assert response.usage.input_tokens > 0 and response.model == req.model
    assert [r.request for r in provider.history] == prepared.requests and provider.billed == provider.history


def test_a_batch_is_in_progress_for_the_set_number_of_polls_then_ends() -> None:
    scripted = {"ticket number 1": EXPIRED, "ticket number 2": errored("overloaded_error")}

    def outcome(item: Received) -> Outcome:
        return scripted.get(item.user_text, SUCCEEDED)

    clock = iter([datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=m) for m in range(10)])
    provider = FakeProvider(batch_polls=2, outcome=outcome, clock=lambda: next(clock))

    async def scenario() -> None:
        first = await provider.submit_batch([(f"c{i}", request(i).params) for i in range(4)])
        assert first.status == "in_progress" and first.counts["processing"] == 4
        with pytest.raises(ProviderError, match="has not ended"):
            [item async for item in provider.batch_results(first.id)]
        statuses = [(await provider.get_batch(first.id)).status for _ in range(3)]
        assert statuses == ["in_progress", "in_progress", "ended"]
        ended = await provider.get_batch(first.id)
        assert ended.counts == {"processing": 0, "succeeded": 2, "errored": 1, "canceled": 0, "expired": 1}
        results = [item async for item in provider.batch_results(first.id)]
        assert [(r.custom_id, r.outcome, r.error_type) for r in results] == [
            ("c0", "succeeded", None), ("c1", "expired", None), ("c2", "errored", "overloaded_error"),
            ("c3", "succeeded", None)]
        second = await provider.submit_batch([("again", request(1).params)])
        listed = await provider.list_batches()
        assert [b.id for b in listed] == [second.id, first.id]
        assert [b.created_at for b in listed] == [second.created_at, first.created_at] and second.created_at
        assert first.created_at is not None and second.created_at > first.created_at
        with pytest.raises(ProviderError, match="does not know batch"):
            await provider.get_batch("msgbatch_missing")

    asyncio.run(scenario())
    assert len(provider.billed) == 2  # only succeeded items, once, when the batch ended
    assert provider.sent("batch")[-1].occurrence == 1  # the same body seen a second time


def test_batches_are_validated_like_the_api() -> None:
    provider = FakeProvider()
    invalid: list[list[tuple[str, dict[str, Any]]]] = [[], [("same", {}), ("same", {})], [("has space", {})]]
    for items in invalid:
        with pytest.raises(ProviderError) as caught:
            asyncio.run(provider.submit_batch(items))
        assert caught.value.error_type == "invalid_request_error"
    assert provider.batches == {}
