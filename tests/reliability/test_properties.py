"""Property-based tests: the task parser and the output parser never crash, whatever they are fed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.errors import SpecError
from evalkit.providers.base import ModelResponse
from evalkit.scoring.answers import parse_answer
from evalkit.spec import OutputSpec, parse_task

SPEC = OutputSpec(label_field="category", labels=["billing", "technical"], fields={"reason": "string"})

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20))
values = st.recursive(scalars,
                      lambda inner: st.one_of(st.lists(inner, max_size=4),
                                              st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                      max_leaves=12)
KNOWN_KEYS = ["name", "dataset", "prompt", "output", "models", "metrics", "decision", "sample", "labels",
              "path", "system", "user", "candidate", "reference", "margin"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_task_parser_turns_any_text_into_a_task_or_a_located_spec_error(text: str) -> None:
    try:
        parse_task(text, Path("fuzz.yaml"))
    except SpecError as error:
        assert error.issues and str(error).startswith("fuzz.yaml")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KNOWN_KEYS), values, max_size=8))
def test_task_parser_handles_any_mapping(data: dict[str, Any]) -> None:
    try:
        text = yaml.safe_dump(data, allow_unicode=True)
    except yaml.YAMLError:
        return
    try:
        parse_task(text, Path("fuzz.yaml"))
    except SpecError as error:
        for issue in error.issues:
            assert issue.message


def _response(text: str, stop: str) -> ModelResponse:
    return ModelResponse(message={"content": [{"type": "text", "text": text}], "stop_reason": stop,
                                  "usage": {}})


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.sampled_from(["end_turn", "max_tokens", "refusal", "stop_sequence"]))
def test_output_parser_classifies_any_text(text: str, stop: str) -> None:
    answer = parse_answer(_response(text, stop), None, SPEC)
    assert answer.outcome in ("ok", "invalid")
    if answer.outcome == "ok":
        assert answer.label in SPEC.label_names
        assert answer.confidence is None or 0 <= answer.confidence <= 1


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["category", "confidence", "escalate", "reason", "other"]), values,
                       max_size=5))
def test_output_parser_validates_any_json_object(data: dict[str, Any]) -> None:
    try:
        text = json.dumps(data)
    except ValueError:
        return
    answer = parse_answer(_response(text, "end_turn"), None, SPEC)
    valid = (data.get("category") in ("billing", "technical") and isinstance(data.get("escalate"), bool)
             and isinstance(data.get("reason"), str)
             and set(data) <= {"category", "confidence", "escalate", "reason"}
             and isinstance(data.get("confidence"), int | float)
             and not isinstance(data.get("confidence"), bool)
             and 0 <= data["confidence"] <= 1)
    assert (answer.outcome == "ok") == valid
