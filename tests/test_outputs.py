"""Parsing model replies into answers: valid, invalid (recorded with a reason), or error."""

from __future__ import annotations

import json
from typing import Any

import pytest

from evalkit.errors import ProviderError
from evalkit.providers.base import ModelResponse
from evalkit.scoring.answers import parse_answer
from evalkit.spec import OutputSpec

SPEC = OutputSpec(label_field="category", labels=["billing", "technical"], fields={"reason": "string"})


def _response(text: str, stop_reason: str = "end_turn", thinking: bool = False) -> ModelResponse:
    content: list[dict[str, Any]] = ([{"type": "thinking", "thinking": "hmm", "signature": "x"}]
                                     if thinking else [])
    content.append({"type": "text", "text": text})
    return ModelResponse(message={"content": content, "stop_reason": stop_reason, "usage": {}})


def _reply(**overrides: Any) -> str:
    body = {"category": "billing", "confidence": 0.8, "escalate": False, "reason": "invoice"}
    body.update(overrides)
    return json.dumps(body)


def test_valid_reply_after_a_thinking_block() -> None:
    answer = parse_answer(_response(_reply(), thinking=True), None, SPEC)
    assert answer.ok and answer.label == "billing" and answer.confidence == 0.8 and answer.escalate is False
    assert answer.fields == {"reason": "invoice"}


def test_label_case_is_normalised_and_fences_are_tolerated() -> None:
    answer = parse_answer(_response("```json\n" + _reply(category="Technical") + "\n```"), None, SPEC)
    assert answer.ok and answer.label == "technical"


@pytest.mark.parametrize(
    ("text", "stop", "reason_part"),
    [
        ("not json", "end_turn", "not valid JSON"),
        ("[1, 2]", "end_turn", "expected an object"),
        (_reply(category="sales"), "end_turn", "not one of the task's labels"),
        (_reply(confidence=1.5), "end_turn", "outside [0, 1]"),
        (_reply(confidence="high"), "end_turn", "not a number"),
        ('{"category": "billing", "confidence": NaN, "escalate": false, "reason": "x"}', "end_turn",
         "finite"),
        (_reply(escalate="no"), "end_turn", "true/false"),
        (_reply(reason=3), "end_turn", "'reason'"),
        (_reply(extra=1), "end_turn", "unexpected keys"),
        ('{"category": "bil', "max_tokens", "truncated by max_tokens"),
        ("", "refusal", "refused"),
        ("", "end_turn", "empty reply"),
    ],
)
def test_invalid_replies_are_recorded_with_a_reason(text: str, stop: str, reason_part: str) -> None:
    answer = parse_answer(_response(text, stop), None, SPEC)
    assert answer.outcome == "invalid"
    assert reason_part in (answer.reason or "")


def test_api_errors_are_errors_not_invalid_answers() -> None:
    answer = parse_answer(None, ProviderError("overloaded", status=529, retryable=True), SPEC)
    assert answer.outcome == "error" and "overloaded" in (answer.reason or "")
