"""run_session and run_evaluation on the fake provider: sequential looks send only the samples they need,
the judge is asked for extraction and text tasks, and a whole run assembles its record from the fake."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evalkit.config import load_settings
from evalkit.errors import BudgetError, ProviderError
from evalkit.progress import NullProgress
from evalkit.providers.response_cache import ResponseCache
from evalkit.run.options import RunOptions
from evalkit.run.pipeline import estimate_run, run_evaluation
from evalkit.run.prepare import Prepared, prepare
from evalkit.run.session import Executor, Session, run_session
from evalkit.scoring.judge import JUDGE_SYSTEM
from evalkit.spec import load_task
from tests.fakes import FakeProvider, Received, default_answer, fake_backend, json_message, message
from tests.unit.helpers import LABELS, tickets, write_task

TEXT = """\
name: notes
dataset: {path: d.jsonl, label_column: summary}
sample: {size: 12, seed: 1}
prompt:
  system: Summarize the document in one sentence.
  user: "{{ text }}"
output: {kind: text}
models: {candidate: claude-haiku-5-5, reference: claude-sonnet-5-5}
metrics: [agreement, token_f1, judge]
decision: {metric: judge}
"""
EXTRACTION = """\
name: invoices
dataset: {path: d.jsonl, label_column: gold}
sample: {size: 12, seed: 1}
prompt:
  system: Extract the invoice fields.
  user: "{{ text }}"
output:
  kind: extraction
  json_schema:
    type: object
    properties: {vendor: {type: string}, total: {type: number}}
    required: [vendor, total]
models: {candidate: claude-haiku-5-5, reference: claude-sonnet-5-5}
decision: {metric: judge}
"""


def _prepare(path: Path, mode: str = "realtime") -> Prepared:
    task = load_task(path)
    return prepare(task, load_settings(task.base_dir), mode=mode)


def _session(prepared: Prepared, provider: FakeProvider, options: RunOptions) -> Session:
    settings = prepared.settings
    with ResponseCache(settings.cache_dir, options.cache_mode) as cache:
        execute = Executor(prepared, fake_backend(provider), cache, options, concurrency=4,
                           progress=NullProgress(), spend=None)
        return asyncio.run(run_session(prepared, execute, options))


def _answers(gold: dict[str, str], wrong: Callable[[Received], bool] = lambda r: False
             ) -> Callable[[Received], dict[str, Any]]:
    """Both models give the gold label, except the candidate where ``wrong`` says so."""
    def answer(received: Received) -> dict[str, Any]:
        label = gold[received.user_text]
        if received.model.startswith("claude-haiku") and wrong(received):
            label = LABELS[1 - LABELS.index(label)]
        return json_message(received, category=label, confidence=0.9)
    return answer


@pytest.mark.parametrize(("mode", "candidate_wrong", "margin", "verdict"), [
    # A wide margin: 20 samples of perfect agreement already show the loss is within it.
    ("realtime", False, 0.4, "GO"), ("batch", False, 0.4, "GO"),
    # A candidate that is always wrong is clearly outside a narrow one.
    ("realtime", True, 0.05, "NO-GO")])
def test_a_sequential_run_stops_at_the_first_deciding_look_and_sends_only_its_samples(
        tmp_path: Path, mode: str, candidate_wrong: bool, margin: float, verdict: str) -> None:
    path, gold = tickets(tmp_path, margin=margin)
    prepared = _prepare(path, mode)
    provider = FakeProvider(_answers(gold, wrong=lambda r: candidate_wrong), batch_polls=1)
    session = _session(prepared, provider, RunOptions(mode=mode, sequential=True))  # type: ignore[arg-type]

    assert session.sequential is not None and session.sequential.looks == [20, 40, 60]
    assert session.sequential.stopped_at == 20 and [h[2] for h in session.sequential.history] == [verdict]
    assert session.decision is not None and session.decision.verdict == verdict
    first_look = {sample.text for sample in prepared.samples.samples[:20]}
    answered = provider.sent(mode)  # type: ignore[arg-type]
    assert len(answered) == 40 and {r.user_text for r in answered} == first_look
    assert len(provider.billed) == 40
    if mode == "batch":
        assert len(provider.batches) == 1
    assert provider.closed


def test_each_undecided_look_sends_the_next_samples_once(tmp_path: Path) -> None:
    path, gold = tickets(tmp_path)
    prepared = _prepare(path)
    # The candidate misses one ticket in ten: far from clear after 20 samples.
    provider = FakeProvider(_answers(gold, wrong=lambda r: r.user_text.split(":")[0].endswith("3")))
    session = _session(prepared, provider, RunOptions(mode="realtime", sequential=True))
    assert session.sequential is not None
    verdicts = [h[2] for h in session.sequential.history]
    assert verdicts[0] == "INCONCLUSIVE" and len(verdicts) >= 2
    stopped = session.sequential.stopped_at
    assert stopped == session.sequential.looks[len(verdicts) - 1]
    texts = [r.user_text for r in provider.history]
    assert len(texts) == 2 * stopped and len(set(texts)) == stopped  # every sample once per model
    assert set(texts) == {sample.text for sample in prepared.samples.samples[:stopped]}


def test_a_classification_task_asks_no_judge(tmp_path: Path) -> None:
    path, gold = tickets(tmp_path, count=30)
    prepared = _prepare(path)
    provider = FakeProvider(_answers(gold))
    session = _session(prepared, provider, RunOptions(mode="realtime"))
    assert len(provider.history) == 60 and session.judged == {}
    assert not any(r.system == JUDGE_SYSTEM for r in provider.history)


def _judge_by_parity(received: Received) -> dict[str, Any]:
    """The judge calls the answers equivalent for even-numbered documents; the models echo the input."""
    if received.system == JUDGE_SYSTEM:
        number = int(received.user_text.split("document ")[1].split()[0])
        return json_message(received, equivalent=number % 2 == 0, reason="scripted")
    return default_answer(received)


@pytest.mark.parametrize("kind", ["text", "extraction"])
def test_extraction_and_text_tasks_ask_the_reference_to_judge_each_answered_pair(tmp_path: Path,
                                                                                  kind: str) -> None:
    rows: list[dict[str, Any]]
    if kind == "text":
        rows = [{"id": f"d{i}", "text": f"document {i} says the release moved to May", "summary": "moved"}
                for i in range(12)]
        path = write_task(tmp_path, TEXT, rows)
    else:
        gold = {"vendor": "Acme", "total": 12}
        rows = [{"id": f"d{i}", "text": f"document {i} invoice from Acme total 12", "gold": gold}
                for i in range(12)]
        path = write_task(tmp_path, EXTRACTION, rows)
    prepared = _prepare(path)
    # One candidate answer fails outright: its sample has no pair to judge.
    provider = FakeProvider(_judge_by_parity)
    provider.fail(ProviderError("overloaded", status=529), when=lambda r: r.model.startswith("claude-haiku")
                  and r.user_text.startswith("document 5 "))
    session = _session(prepared, provider, RunOptions(mode="realtime"))

    judge = [r for r in provider.history if r.system == JUDGE_SYSTEM]
    assert len(provider.history) == 24 + 11 and len(judge) == 11
    assert {r.model for r in judge} == {"claude-sonnet-5-5"}
    assert all("<candidate_answer>" in r.user_text and "<reference_answer>" in r.user_text for r in judge)
    expected = {row["id"]: int(row["id"][1:]) % 2 == 0 for row in rows if row["id"] != "d5"}
    assert session.judged == expected


def test_run_evaluation_on_a_fake_backend_builds_the_record_and_a_rerun_costs_nothing(tmp_path: Path) -> None:
    path, gold = tickets(tmp_path, count=40, margin=0.4)
    task = load_task(path)
    settings = load_settings(task.base_dir)
    provider = FakeProvider(_answers(gold), batch_polls=2)
    result = run_evaluation(task, settings, RunOptions(mode="batch", run_id="fake"), progress=NullProgress(),
                            backend=fake_backend(provider))
    record = result.record
    assert record.decision.verdict == "GO" and record.provenance.mode == "batch"
    assert record.provenance.backend.kind == "api" and record.simulated is False
    assert record.execution.requests_sent == 80 and record.batch.submitted_items == 80
    assert len(provider.billed) == 80 and {r.mode for r in provider.billed} == {"batch"}
    assert all(row.candidate.answer.label == row.gold for row in result.rows)
    assert result.folder == tmp_path / "reports" / "tickets" / "fake"

    again = FakeProvider(_answers(gold))
    rerun = run_evaluation(task, settings, RunOptions(mode="batch", run_id="again"), progress=NullProgress(),
                           backend=fake_backend(again))
    assert again.history == [] and rerun.record.execution.cache_hits == 80
    assert rerun.record.decision == record.decision


def test_run_evaluation_refuses_to_start_over_budget(tmp_path: Path) -> None:
    path, gold = tickets(tmp_path, count=40)
    task = load_task(path)
    provider = FakeProvider(_answers(gold))
    with pytest.raises(BudgetError, match="refusing to start"):
        run_evaluation(task, load_settings(task.base_dir), RunOptions(mode="realtime", max_cost=1e-9),
                       progress=NullProgress(), backend=fake_backend(provider))
    assert provider.history == []


def test_run_evaluation_stops_sending_once_the_answers_cost_more_than_the_budget(tmp_path: Path) -> None:
    path, gold = tickets(tmp_path, count=40)
    task = load_task(path)
    settings = load_settings(task.base_dir)
    # Each answer is far longer than estimated: the first one alone passes the budget.
    provider = FakeProvider(lambda r: message(r.params, json.dumps({"category": gold[r.user_text]}),
                                              output_tokens=100_000_000))
    backend = fake_backend(provider)
    estimate = estimate_run(prepare(task, settings, mode="realtime"), backend, mode="realtime")
    budget = estimate.expected_usd * 1.5
    with pytest.raises(BudgetError, match="stopped at the budget"):
        run_evaluation(task, settings, RunOptions(mode="realtime", max_cost=budget, concurrency=1),
                       progress=NullProgress(), backend=backend)
    assert len(provider.history) == 1
    with ResponseCache(settings.cache_dir) as cache:
        assert len(cache) == 1  # what was paid for is kept for the next run
