"""What the Anthropic API rejects and accepts, as a table: the facts sheet's rules as requests.

Used by tests/test_simulator_rejections.py (against the simulator) and by tests/conformance/ (against the
simulator and, with a key, against the real API). Each case names the facts-sheet section it comes from
(docs/reference/anthropic-facts.md). ``message`` is a fragment the simulator's message contains; the live
conformance run reports where the API's wording differs instead of failing on it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

DROP = object()  # in Case.body: remove this key from the base request
MODEL = "claude-haiku-5-5"
STRUCTURED_BETA = {"anthropic-beta": "structured-outputs-2025-11-13"}
LEGACY = {"anthropic-version": "2023-06-01"}  # the older API version, under which sampling params exist


def obj(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False, **extra}


def json_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"format": {"type": "json_schema", "schema": schema}}


GOOD_SCHEMA = obj({"answer": {"type": "string"}})


#: vision.md's own 1x1 PNG example, and a one-page blank PDF (pypdf): the smallest files the API takes.
PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"


def _blank_pdf() -> str:
    import base64
    import io

    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    out = io.BytesIO()
    writer.write(out)
    return base64.b64encode(out.getvalue()).decode()


BLANK_PDF = _blank_pdf()


def with_block(block: dict[str, Any]) -> dict[str, Any]:
    """A request whose user turn carries ``block`` before its text (docs/inputs.md)."""
    return {"messages": [{"role": "user", "content": [block, {"type": "text", "text": "Describe it."}]}]}


def image(media_type: str, data: str) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def document(media_type: str, data: str) -> dict[str, Any]:
    return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}


def base_body() -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 256, "thinking": {"type": "disabled"},
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello as JSON."}]}]}


@dataclass(frozen=True)
class Case:
    name: str
    body: dict[str, Any]
    message: str = ""
    status: int = 400
    error_type: str = "invalid_request_error"
    headers: dict[str, str] = field(default_factory=dict)
    path: str = "/v1/messages"
    source: str = ""
    check_json: bool = False


def body_for(case: Case) -> dict[str, Any]:
    body = base_body()
    if case.path.endswith("count_tokens"):
        body.pop("max_tokens")
    for key, value in case.body.items():
        if value is DROP:
            body.pop(key, None)
        else:
            body[key] = copy.deepcopy(value)
    return body


def _system(control: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": "You answer in JSON.", "cache_control": control}]


def _schema_case(name: str, schema: dict[str, Any], message: str) -> Case:
    return Case(name, {"output_config": json_format(schema)}, message, source="§7")


SCHEMA_CASES = [
    _schema_case("numeric constraint minimum", obj({"n": {"type": "number", "minimum": 0}}), "'minimum'"),
    _schema_case("numeric constraint multipleOf", obj({"n": {"type": "integer", "multipleOf": 2}}),
                 "'multipleOf'"),
    _schema_case("string constraint maxLength", obj({"s": {"type": "string", "maxLength": 5}}),
                 "'maxLength'"),
    _schema_case("string constraint minLength", obj({"s": {"type": "string", "minLength": 1}}),
                 "'minLength'"),
    _schema_case("additionalProperties missing on the root", {"type": "object",
                                                               "properties": {"a": {"type": "string"}}},
                 "additionalProperties is missing"),
    _schema_case("additionalProperties missing on a nested object",
                 obj({"inner": {"type": "object", "properties": {"a": {"type": "string"}}}}),
                 "additionalProperties is missing"),
    _schema_case("additionalProperties true",
                 {**obj({"a": {"type": "string"}}), "additionalProperties": True},
                 "additionalProperties is True"),
    _schema_case("unsupported string format", obj({"s": {"type": "string", "format": "credit-card"}}),
                 "format 'credit-card'"),
    _schema_case("minItems above 1", obj({"xs": {"type": "array", "items": {"type": "string"},
                                                 "minItems": 2}}), "minItems 2"),
    _schema_case("maxItems", obj({"xs": {"type": "array", "items": {"type": "string"}, "maxItems": 3}}),
                 "'maxItems'"),
    _schema_case("pattern with lookahead", obj({"s": {"type": "string", "pattern": "^(?=a)a+$"}}),
                 "pattern feature"),
    _schema_case("pattern with a backreference", obj({"s": {"type": "string", "pattern": "(a)\\1"}}),
                 "pattern feature"),
    _schema_case("external $ref", obj({"a": {"$ref": "http://example.com/schema.json"}}), "external $ref"),
    _schema_case("recursive schema", {**obj({"node": {"$ref": "#/$defs/node"}}),
                                      "$defs": {"node": obj({"next": {"$ref": "#/$defs/node"}})}},
                 "recursive schemas"),
    _schema_case("object inside enum", obj({"a": {"enum": [{"x": 1}, "b"]}}), "inside enum"),
    _schema_case("allOf with $ref", {**obj({"a": {"allOf": [{"$ref": "#/$defs/s"}]}}),
                                     "$defs": {"s": {"type": "string"}}}, "allOf with $ref"),
    _schema_case("unsupported keyword oneOf", obj({"a": {"oneOf": [{"type": "string"}]}}), "'oneOf'"),
]

REJECTED: list[Case] = [
    *SCHEMA_CASES,
    Case("cache_control ttl 2h on a system block", {"system": _system({"type": "ephemeral", "ttl": "2h"})},
         "system.0.cache_control.ttl: Input should be '5m' or '1h'", source="§1.2, §3"),
    Case("cache_control type persistent", {"system": _system({"type": "persistent"})},
         "system.0.cache_control.type: Input should be 'ephemeral'", source="§3"),
    Case("top-level cache_control ttl 2h", {"cache_control": {"type": "ephemeral", "ttl": "2h"}},
         "cache_control.ttl: Input should be '5m' or '1h'", source="§3"),
    Case("cache_control on a message block with ttl 1d",
         {"messages": [{"role": "user", "content": [
             {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral", "ttl": "1d"}}]}]},
         "messages.0.content.0.cache_control.ttl", source="§3"),
    Case("a 1h breakpoint after a 5m one",
         {"system": [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
                     {"type": "text", "text": "b", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
         "ttl='1h' must not come after", source="§3 mixing TTLs"),
    Case("five cache breakpoints",
         {"system": [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}}
                     for i in range(5)]},
         "A maximum of 4 blocks with cache_control may be provided. Found 5.", source="§3"),
    Case("automatic caching plus four explicit breakpoints",
         {"cache_control": {"type": "ephemeral"},
          "system": [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}}
                     for i in range(4)]},
         "Found 5.", source="§3"),
    Case("thinking enabled without budget_tokens", {"thinking": {"type": "enabled"}},
         "thinking.enabled.budget_tokens: Field required", source="§1.2, §8"),
    Case("thinking enabled with budget_tokens 1000", {"thinking": {"type": "enabled", "budget_tokens": 1000}},
         "greater than or equal to 1024", source="§1.2, §8"),
    Case("thinking budget not below max_tokens",
         {"max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 2000}},
         "`max_tokens` must be greater than `thinking.budget_tokens`",
         source="SDK ThinkingConfigEnabledParam"),
    Case("unknown thinking type", {"thinking": {"type": "deep"}}, "thinking.type: Input should be",
         source="§1.2"),
    Case("assistant prefill on Haiku 5.5",
         {"messages": [{"role": "user", "content": "Name a colour."},
                       {"role": "assistant", "content": "The colour is"}]},
         "does not support assistant message prefill", source="§0.7, §4"),
    Case("assistant prefill with JSON outputs (any model)",
         {"model": "claude-sonnet-4-6", "output_config": json_format(GOOD_SCHEMA),
          "messages": [{"role": "user", "content": "Name a colour."},
                       {"role": "assistant", "content": "{"}]},
         "not supported with structured outputs", source="§0.7, §7"),
    Case("temperature (API 2026-10-21)", {"temperature": 0}, "temperature: Extra inputs are not permitted",
         source="§0.3"),
    Case("top_p", {"top_p": 0.9}, "top_p: Extra inputs are not permitted", source="§0.3"),
    Case("top_k", {"top_k": 5}, "top_k: Extra inputs are not permitted", source="§0.3"),
    Case("temperature 1 (the default) under 2026-10-21", {"temperature": 1},
         "temperature: Extra inputs are not permitted", source="§0.3 (even at default values)"),
    Case("non-default temperature on Haiku 5.5 under 2023-06-01", {"temperature": 0},
         "is deprecated for this model", headers=LEGACY,
         source="§0.3, §4 (independently of the API version)"),
    Case("top_p on Sonnet 5.5 under 2023-06-01", {"model": "claude-sonnet-5-5", "top_p": 0.9},
         "is deprecated for this model", headers=LEGACY, source="§0.3, §4"),
    Case("temperature and top_p on Haiku 4.5 under 2023-06-01",
         {"model": "claude-haiku-4-5", "temperature": 0.5, "top_p": 0.9}, "cannot both be specified",
         headers=LEGACY, source="§4 (never both temperature and top_p)"),
    Case("temperature above 1 under 2023-06-01", {"model": "claude-haiku-4-5", "temperature": 1.5},
         "temperature: Input should be less than or equal to 1", headers=LEGACY,
         source="API reference: temperature ranges from 0.0 to 1.0"),
    Case("temperature on count_tokens under 2023-06-01", {"temperature": 1},
         "temperature: Extra inputs are not permitted", headers=LEGACY, path="/v1/messages/count_tokens",
         source="§0.3"),
    Case("max_tokens above Haiku 5.5's 128K", {"max_tokens": 128_001},
         "max_tokens: 128001 > 128000, which is the maximum allowed number of output tokens for "
         "claude-haiku-5-5", source="§4"),
    Case("max_tokens above Haiku 4.5's 64K", {"model": "claude-haiku-4-5", "max_tokens": 64_001},
         "64001 > 64000", source="§4"),
    Case("unknown effort level", {"output_config": {"effort": "extreme"}},
         "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'", source="§1.2"),
    Case("effort xhigh on sonnet 4.6", {"model": "claude-sonnet-4-6", "output_config": {"effort": "xhigh"}},
         "This model does not support effort level 'xhigh'. Supported levels: high, low, max, medium.",
         source="§1.2, recorded/error_400_invalid_request"),
    Case("effort on Haiku 4.5", {"model": "claude-haiku-4-5", "output_config": {"effort": "low"}},
         "does not support the effort parameter", source="§8 (model-dependent; field reports)"),
    Case("unknown output_config key", {"output_config": {"verbosity": "low"}},
         "output_config.verbosity: Extra inputs are not permitted", source="§1.2"),
    Case("output_config.format of another type", {"output_config": {"format": {"type": "xml"}}},
         "output_config.format.type: Input should be 'json_schema'", source="§1.2"),
    Case("deprecated output_format without its beta header",
         {"output_format": {"type": "json_schema", "schema": GOOD_SCHEMA}},
         "output_format: Extra inputs are not permitted", source="§1.2, §7"),
    Case("deprecated output_format with a bad schema",
         {"output_format": {"type": "json_schema", "schema": obj({"n": {"type": "number", "maximum": 9}})}},
         "output_format.schema: 'maximum'", headers=STRUCTURED_BETA, source="§7"),
    Case("forced tool_choice on Sonnet 5.5",
         {"model": "claude-sonnet-5-5", "tool_choice": {"type": "tool", "name": "answer"},
          "tools": [{"name": "answer", "description": "Answer.", "input_schema": GOOD_SCHEMA}]},
         "forced tool use", source="§0.6"),
    Case("strict tool with an unsupported schema",
         {"tools": [{"name": "answer", "description": "Answer.", "strict": True,
                     "input_schema": obj({"n": {"type": "integer", "minimum": 1}})}]},
         "tools.0.input_schema: 'minimum'", source="§7 (strict tools share the limits)"),
    Case("unknown model", {"model": "claude-does-not-exist"}, "model: claude-does-not-exist", status=404,
         error_type="not_found_error", source="§0.5, recorded/error_404"),
    Case("retired model", {"model": "claude-3-5-haiku-20241022"}, "model: claude-3-5-haiku-20241022",
         status=404, error_type="not_found_error", source="§0.4"),
    Case("unknown top-level key", {"frequency_penalty": 1},
         "frequency_penalty: Extra inputs are not permitted", source="§0.3"),
    Case("image with invalid base64", with_block(image("image/png", "not*base64!")),
         "Invalid base64 data", source="vision.md"),
    Case("image media type outside the four", with_block(image("image/bmp", PNG_1X1)),
         "media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'",
         source="vision.md Supported formats"),
    Case("png bytes sent as image/jpeg", with_block(image("image/jpeg", PNG_1X1)),
         "specified using the image/jpeg media type", source="vision.md"),
    Case("document with an image media type", with_block(document("image/png", PNG_1X1)),
         "media_type: Input should be 'application/pdf'", source="pdf-support.md"),
    Case("document that is not a PDF", with_block(document("application/pdf", PNG_1X1)),
         "The PDF specified was not valid.", source="pdf-support.md"),
]

ACCEPTED: list[Case] = [
    Case("a schema inside the subset", {"output_config": json_format(obj({
        "label": {"type": "string", "enum": ["a", "b"]}, "when": {"type": "string", "format": "date"},
        "n": {"anyOf": [{"type": "number"}, {"type": "null"}]},
        "xs": {"type": "array", "items": {"type": "string"}, "minItems": 1}}))}, check_json=True,
         source="§7"),
    Case("deprecated output_format with its beta header",
         {"output_format": {"type": "json_schema", "schema": GOOD_SCHEMA}}, headers=STRUCTURED_BETA,
         check_json=True, source="§1.2, §7 (transition period)"),
    Case("cache_control ttl 1h then 5m",
         {"system": [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
                     {"type": "text", "text": "b", "cache_control": {"type": "ephemeral", "ttl": "5m"}}]},
         source="§3"),
    Case("four breakpoints", {"system": [{"type": "text", "text": f"part {i}",
                                          "cache_control": {"type": "ephemeral"}} for i in range(4)]},
         source="§3"),
    Case("thinking enabled with budget_tokens 1024", {"max_tokens": 2048,
                                                      "thinking": {"type": "enabled", "budget_tokens": 1024}},
         source="§8"),
    Case("assistant prefill without JSON on Sonnet 4.6",
         {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "Name a colour."},
                                                     {"role": "assistant", "content": "The colour is"}]},
         source="§0.7"),
    Case("effort xhigh on Sonnet 5.5", {"model": "claude-sonnet-5-5", "thinking": DROP,
                                        "output_config": {"effort": "xhigh"}}, source="§1.2"),
    Case("max_tokens at Haiku 5.5's maximum", {"max_tokens": 128_000}, source="§4"),
    Case("max_tokens 0 writes the cache and answers nothing", {"max_tokens": 0}, source="§3 pre-warm"),
    Case("count_tokens does not compile the schema", {"output_config": json_format(
        obj({"n": {"type": "number", "minimum": 0}}))}, path="/v1/messages/count_tokens", source="§7"),
    Case("anthropic-version 2023-06-01", {}, headers=LEGACY, source="§5"),
    Case("temperature 1 (the default) on Haiku 5.5 under 2023-06-01", {"temperature": 1}, headers=LEGACY,
         source="§0.3, §4 (only non-default values are rejected)"),
    Case("temperature 0 on Haiku 4.5 under 2023-06-01", {"model": "claude-haiku-4-5", "temperature": 0},
         headers=LEGACY, source="§0.3 implication, §4"),
    Case("a png image block", with_block(image("image/png", PNG_1X1)), source="vision.md"),
    Case("a pdf document block", with_block(document("application/pdf", BLANK_PDF)), source="pdf-support.md"),
    Case("a pdf document block, counted", with_block(document("application/pdf", BLANK_PDF)),
         path="/v1/messages/count_tokens", source="pdf-support.md"),
]
