"""Extraction and free-text tasks: per-sample binarised scores, metric reports, the judge request."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.datasets import Sample
from evalkit.errors import SpecError
from evalkit.providers.base import ModelResponse
from evalkit.scoring.answers import Answer
from evalkit.scoring.judge import judge_params, parse_judge
from evalkit.scoring.metrics import METRICS
from evalkit.scoring.samples import score_sample
from evalkit.spec import load_task
from evalkit.stats.decision import decide

TEXT_TASK = """\
name: notes
dataset: {path: d.jsonl, label_column: summary}
prompt:
  system: Summarize the document in one or two sentences.
  user: "{{ text }}"
output:
  kind: text
models: {candidate: claude-haiku-5-5, reference: claude-sonnet-5-5}
"""

EXTRACTION_TASK = """\
name: invoices
dataset: {path: d.jsonl, label_column: gold}
prompt:
  system: Extract the invoice fields.
  user: "{{ text }}"
output:
  kind: extraction
  json_schema:
    type: object
    properties:
      vendor: {type: string}
      total: {type: number}
    required: [vendor, total]
models: {candidate: claude-haiku-5-5, reference: claude-sonnet-5-5}
"""


def _task(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "task.yaml"
    path.write_text(text)
    return load_task(path)


def _text(value: str) -> Answer:
    return Answer(outcome="ok", fields={"text": value})


def test_text_task_defaults_and_binarised_scores(tmp_path: Path) -> None:
    task = _task(tmp_path, TEXT_TASK)
    assert task.output.confidence_field is None and not task.output.structured
    assert task.metric_names == ["agreement", "accuracy", "exact_match", "token_f1", "rouge_l"]
    sample = Sample(id="1", text="doc", label="the cat sat on the mat", fields={}, input_hash="h")
    row = score_sample(sample, _text("a cat sat on a red mat"), _text("the cat sat on the mat"), task)
    assert row.primary["cand_vs_gold"] == pytest.approx(0.8889, abs=1e-4)  # spec §7 token F1
    assert row.correct("candidate") is True and row.correct("reference") is True and row.agree is True
    wrong = score_sample(sample, _text("dogs bark"), _text("the cat sat on the mat"), task)
    assert wrong.correct("candidate") is False and wrong.agree is False
    invalid = score_sample(sample, Answer(outcome="invalid", reason="truncated"), _text("x"), task)
    assert invalid.correct("candidate") is False


def test_extraction_scores_fields_and_reports_micro_f1(tmp_path: Path) -> None:
    task = _task(tmp_path, EXTRACTION_TASK)
    gold = {"name": "Acme Corp", "date": "2024-01-05", "total": 1200.0, "items": ["bolt", "nut"]}
    sample = Sample(id="1", text="doc", label=gold, fields={}, input_hash="h")
    candidate = Answer(outcome="ok", fields={"name": "ACME corp.", "date": "2024-01-05", "total": 1200,
                                             "items": ["nut", "washer"], "currency": "USD"})
    row = score_sample(sample, candidate, Answer(outcome="ok", fields=dict(gold)), task)
    assert row.primary["cand_vs_gold"] == pytest.approx(0.7273, abs=1e-4)  # spec §7 field F1
    assert row.correct("candidate") is False  # below the 0.8 default threshold
    assert row.correct("reference") is True
    report = METRICS["field_f1"].compute([row] * 12, task)
    assert report.candidate_vs_gold == pytest.approx(0.7273, abs=1e-4)
    assert report.micro_candidate_vs_gold.precision == pytest.approx(4 / 6, abs=1e-4)
    decision = decide([row] * 40, margin=0.05, plan_power=False)
    assert decision.mode == "gold" and decision.verdict == "NO-GO"


def test_judge_metric_decides_on_the_references_verdicts(tmp_path: Path) -> None:
    task = _task(tmp_path, TEXT_TASK + "decision: {metric: judge}\n")
    sample = Sample(id="1", text="doc", label="gold summary", fields={}, input_hash="h")
    equivalent = score_sample(sample, _text("a"), _text("b"), task, judge=True)
    different = score_sample(sample, _text("a"), _text("b"), task, judge=False)
    assert equivalent.agree is True and different.agree is False
    decision = decide([equivalent] * 297 + [different] * 3, margin=0.05, plan_power=False)
    assert decision.mode == "reference" and decision.verdict == "GO"
    params = judge_params(task, sample, _text("cand answer"), _text("ref answer"))
    assert params["model"] == "claude-sonnet-5-5"
    user = params["messages"][0]["content"][0]["text"]
    assert "<candidate_answer>\ncand answer\n</candidate_answer>" in user

    def reply(text: str, stop: str = "end_turn") -> ModelResponse:
        return ModelResponse(message={"content": [{"type": "text", "text": text}], "stop_reason": stop})

    assert parse_judge(reply('{"equivalent": true, "reason": "same"}')) is True
    assert parse_judge(reply("not json")) is None
    assert parse_judge(reply('{"equivalent": true, "rea', stop="max_tokens")) is None  # cut off: not judged
    assert parse_judge(None) is None


def test_metric_that_does_not_fit_the_task_kind_is_refused(tmp_path: Path) -> None:
    from evalkit.scoring.metrics import check_metric_names

    task = _task(tmp_path, TEXT_TASK + "metrics: [token_f1, macro_f1]\n")
    with pytest.raises(SpecError) as caught:
        check_metric_names(task)
    assert "macro_f1" in str(caught.value) and "not available for text tasks" in str(caught.value)


def test_extraction_without_schema_and_text_with_confidence_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="json_schema"):
        _task(tmp_path, EXTRACTION_TASK.split("  json_schema:")[0] + "models: {candidate: a, reference: b}\n")
    with pytest.raises(SpecError, match="plain text"):
        _task(tmp_path, TEXT_TASK.replace("  kind: text\n", "  kind: text\n  confidence_field: conf\n"))


def test_kappa_on_a_single_label_is_undefined_not_a_warning() -> None:
    """A sample whose gold labels are all one class made scikit-learn warn (an error in this suite) and
    stopped the run; kappa is undefined there and is reported as missing."""
    from evalkit.scoring.metrics import _kappa

    assert _kappa(["billing"] * 5, ["billing"] * 5) is None
    assert _kappa(["billing", "technical"], ["billing", "technical"]) == 1.0
