"""Turns a model's reply into a typed answer, or an explicit ``invalid`` outcome with the reason.

Model output is untrusted input. Nothing here raises on bad output: truncation, refusals, invalid JSON,
off-schema values and NaN confidences are all recorded as ``invalid`` so they can be counted and shown.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from evalkit.errors import ProviderError
from evalkit.providers.base import ModelResponse
from evalkit.spec import OutputSpec

Outcome = Literal["ok", "invalid", "error"]
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


# A slotted dataclass, not a pydantic model: a run holds two per sample until its record is built, and a
# pydantic instance (its ``__dict__`` and fields-set) is ~1.1 KB where this is ~0.1 KB (issue 20: 100k
# samples in bounded memory). Every constructor below passes checked values; results.jsonl rows, which
# embed it, are still validated by pydantic when read.
@dataclass(frozen=True, slots=True)
class Answer:
    """One model's parsed answer to one sample: ``ok``, ``invalid`` (with the reason) or ``error``."""

    outcome: Outcome
    label: str | None = None
    confidence: float | None = None
    escalate: bool | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None  # why it is invalid / what the error was
    #: A stable name for the kind of problem (``truncated``, ``not_json``, ``bad_label``…), to count by.
    code: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def _invalid(code: str, reason: str, **known: Any) -> Answer:
    return Answer(outcome="invalid", reason=reason, code=code, **known)


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return False


def _confidence_of(data: dict[str, Any], spec: OutputSpec) -> tuple[float | None, str | None]:
    """(confidence, problem) for the task's confidence field."""
    if not spec.confidence_field:
        return None, None
    raw = data.get(spec.confidence_field)
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None, f"'{spec.confidence_field}' is missing or not a number"
    if not math.isfinite(raw):
        return None, f"'{spec.confidence_field}' is not a finite number"
    if not 0.0 <= raw <= 1.0:
        return None, f"'{spec.confidence_field}' = {raw} is outside [0, 1]"
    return float(raw), None


def _parse_extraction(data: dict[str, Any], spec: OutputSpec) -> Answer:
    confidence, problem = _confidence_of(data, spec)
    if problem:
        return _invalid("bad_confidence", problem)
    escalate = data.get(spec.escalate_field) if spec.escalate_field else None
    if spec.escalate_field and not isinstance(escalate, bool):
        return _invalid("bad_escalate", f"'{spec.escalate_field}' is missing or not true/false",
                        confidence=confidence)
    extracted = {k: v for k, v in data.items() if k not in (spec.confidence_field, spec.escalate_field)}
    required = (spec.json_schema or {}).get("required") or []
    missing = [key for key in required if key not in extracted]
    if missing:
        return _invalid("missing_field",
                        f"missing required fields: {', '.join(missing[:5])}", confidence=confidence,
                        escalate=escalate, fields=extracted)
    return Answer(outcome="ok", confidence=confidence, escalate=escalate, fields=extracted)


def parse_answer(response: ModelResponse | None, error: ProviderError | None, spec: OutputSpec) -> Answer:
    """Classify one call's result as ok / invalid / error and extract the answer fields."""
    if error is not None or response is None:
        return Answer(outcome="error", reason=str(error.message if error else "no response"), code="error")
    stop = response.stop_reason
    text = response.text
    if stop == "refusal":
        return _invalid("refusal", "the model refused (stop_reason=refusal)")
    if stop == "max_tokens":
        if response.thought:
            return _invalid("truncated", "cut off by max_tokens after a thinking block (thinking tokens "
                                         "count "
                                         ""
                                         ""
                            "toward max_tokens); raise the model's max_tokens or lower its effort")
        return _invalid("truncated", "output truncated by max_tokens; raise models.max_tokens in the task")
    if stop == "model_context_window_exceeded":
        return _invalid("context_window", "the prompt exceeded the model's context window")
    if not text.strip():
        return _invalid("empty", f"empty reply (stop_reason={stop})")
    if spec.kind == "text":
        return Answer(outcome="ok", fields={"text": text.strip()})
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        data = json.loads(body, parse_constant=lambda name: float("nan"))
    except json.JSONDecodeError as exc:
        return _invalid("not_json", f"reply is not valid JSON ({exc.msg} at char {exc.pos})")
    if not isinstance(data, dict):
        return _invalid("not_object", f"reply is JSON {type(data).__name__}, expected an object")
    if spec.kind == "extraction":
        return _parse_extraction(data, spec)

    raw_label = data.get(spec.label_field)
    if not isinstance(raw_label, str):
        return _invalid("bad_label", f"'{spec.label_field}' is missing or not a string")
    # Structured outputs do not guarantee enum capitalisation; accept a case-insensitive match.
    by_folded = {name.casefold(): name for name in spec.label_names}
    label = by_folded.get(raw_label.strip().casefold())
    if label is None:
        return _invalid("bad_label", f"label {raw_label[:60]!r} is not one of the task's labels")

    confidence = None
    if spec.confidence_field:
        raw_conf = data.get(spec.confidence_field)
        if isinstance(raw_conf, bool) or not isinstance(raw_conf, int | float):
            return _invalid("bad_confidence",
                            f"'{spec.confidence_field}' is missing or not a number", label=label)
        if not math.isfinite(raw_conf):
            return _invalid("bad_confidence",
                            f"'{spec.confidence_field}' is not a finite number", label=label)
        if not 0.0 <= raw_conf <= 1.0:
            return _invalid("bad_confidence", f"'{spec.confidence_field}' = {raw_conf} is outside [0, 1]",
                            label=label)
        confidence = float(raw_conf)

    escalate = None
    if spec.escalate_field:
        raw_escalate = data.get(spec.escalate_field)
        if not isinstance(raw_escalate, bool):
            return _invalid("bad_escalate",
                            f"'{spec.escalate_field}' is missing or not true/false", label=label,
                            confidence=confidence)
        escalate = raw_escalate

    extra: dict[str, Any] = {}
    for name, kind in spec.fields.items():
        value = data.get(name)
        if not _type_ok(value, kind):
            return _invalid("bad_field",
                            f"'{name}' is missing or not a {kind}", label=label, confidence=confidence,
                            escalate=escalate)
        extra[name] = value
    unexpected = sorted(set(data) - {spec.label_field, spec.confidence_field, spec.escalate_field,
                                     *spec.fields})
    if unexpected and spec.structured:
        return _invalid("unexpected_keys",
                        f"unexpected keys in reply: {', '.join(unexpected[:5])}", label=label,
                        confidence=confidence, escalate=escalate)
    return Answer(outcome="ok", label=label, confidence=confidence, escalate=escalate, fields=extra)
