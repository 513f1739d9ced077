"""Output-token advice from measured answers: the max_tokens that would cut off at most 0.5% of them, more
room when too many were cut off, and the dollars an unread answer field costs at production volume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evalkit.config import load_settings
from evalkit.progress import NullProgress
from evalkit.run.options import RunOptions
from evalkit.run.pipeline import run_evaluation
from evalkit.spec import load_task
from tests.fakes import FakeProvider, Received, message

TASK = """\
name: tickets
dataset: {path: d.jsonl, label_column: category}
sample: {size: 200, seed: 1}
prompt: {system: Route the ticket., user: "{{ text }}"}
output:
  label_field: category
  labels: [billing, technical]
  fields: {reason: string}
models: {candidate: claude-haiku-5-5, reference: claude-sonnet-5-5, max_tokens: 1000}
production: {daily_requests: 10000, days_per_month: 30}
"""
REASON = "the customer mentions an invoice and a charge on the card"


def _run(tmp_path: Path, answer: Any) -> Any:
    rows = [{"id": f"t{i:03d}", "text": f"ticket {i}", "category": "billing"} for i in range(200)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "evalkit.toml").write_text('[evalkit]\ncache_dir = ".evalkit/cache"\n')
    (tmp_path / "task.yaml").write_text(TASK)
    task = load_task(tmp_path / "task.yaml")
    result = run_evaluation(task, load_settings(task.base_dir), RunOptions(mode="realtime"),
                            progress=NullProgress(), backend=__import__("tests.fakes").fakes.fake_backend(
                                FakeProvider(answer)))
    return {item.role: item for item in result.record.verbosity}


def _answer(tokens: Any, stop: Any = lambda number: "end_turn") -> Any:
    def answer(received: Received) -> dict[str, Any]:
        number = int(received.user_text.split()[1])
        text = json.dumps({"category": "billing", "confidence": 0.9, "escalate": False, "reason": REASON})
        return message(received.params, text, output_tokens=tokens(number), stop_reason=stop(number))
    return answer


def test_the_suggested_budget_cuts_off_at_most_half_a_percent(tmp_path: Path) -> None:
    advice = _run(tmp_path, _answer(lambda number: 50 + number))  # 50 … 249 output tokens
    candidate = advice["candidate"]
    assert candidate.n == 200 and candidate.truncated == 0
    assert 249 <= candidate.suggested_max_tokens < 1000 and candidate.suggested_max_tokens % 64 == 0
    assert candidate.output_p50 == 149.5
    assert any(f"max_tokens = {candidate.suggested_max_tokens}" in line for line in candidate.advice)


def test_too_many_cut_off_answers_ask_for_more_room(tmp_path: Path) -> None:
    cut = lambda number: "max_tokens" if number % 20 == 0 else "end_turn"  # noqa: E731 - 5% cut off
    advice = _run(tmp_path, _answer(lambda number: 1000 if number % 20 == 0 else 300, cut))
    candidate = advice["candidate"]
    assert candidate.truncated == 10 and candidate.suggested_max_tokens == 1536
    assert any("raise it to about 1536" in line for line in candidate.advice)


def test_an_unread_field_is_priced_at_production_volume(tmp_path: Path) -> None:
    advice = _run(tmp_path, _answer(lambda number: 120))
    [reason] = advice["reference"].unread_fields
    pricing = load_settings(tmp_path).pricing
    output_rate = pricing.price_for("claude-sonnet-5-5").output * 1e-6
    assert reason.name == "reason" and reason.mean_tokens > 5
    assert reason.usd_per_month == __import__("pytest").approx(reason.mean_tokens * output_rate * 10000 * 30)
