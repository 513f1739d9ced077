"""The structured-outputs JSON Schema subset, table-driven from docs/reference/anthropic-facts.md §7."""

from __future__ import annotations

from typing import Any

import pytest

from evalkit.schema_rules import schema_violations


def obj(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
        **extra,
    }


ACCEPTED = [
    (
        "every supported type",
        obj({name: {"type": name} for name in ("string", "integer", "number", "boolean", "null")}),
    ),
    (
        "enum of scalars and const",
        obj(
            {
                "a": {"type": "string", "enum": ["x", "y"]},
                "b": {"const": 3},
                "c": {"enum": [1, True, None, "z"]},
            }
        ),
    ),
    ("anyOf for a nullable field", obj({"a": {"anyOf": [{"type": "string"}, {"type": "null"}]}})),
    ("allOf without $ref", obj({"a": {"allOf": [{"type": "string"}, {"description": "x"}]}})),
    (
        "internal $ref and $defs",
        {**obj({"a": {"$ref": "#/$defs/item"}}), "$defs": {"item": obj({"n": {"type": "integer"}})}},
    ),
    (
        "default, title and description",
        obj({"a": {"type": "string", "default": "x", "title": "A", "description": "d"}}),
    ),
    (
        "supported string formats",
        obj(
            {
                f: {"type": "string", "format": f}
                for f in (
                    "date-time",
                    "time",
                    "date",
                    "duration",
                    "email",
                    "hostname",
                    "uri",
                    "ipv4",
                    "ipv6",
                    "uuid",
                )
            }
        ),
    ),
    (
        "arrays with minItems 0 or 1",
        obj(
            {
                "a": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "b": {"type": "array", "items": {"type": "string"}, "minItems": 0},
            }
        ),
    ),
    ("a simple pattern", obj({"a": {"type": "string", "pattern": r"^INV-\d{4,6}[A-Z]?$"}})),
    ("nested objects closed", obj({"a": obj({"b": obj({"c": {"type": "string"}})})})),
]

REJECTED = [
    ("numeric bounds", obj({"a": {"type": "number", "minimum": 0, "maximum": 1}}), "minimum"),
    ("exclusive bounds", obj({"a": {"type": "integer", "exclusiveMinimum": 0}}), "exclusiveMinimum"),
    ("multipleOf", obj({"a": {"type": "integer", "multipleOf": 5}}), "multipleOf"),
    ("string length", obj({"a": {"type": "string", "minLength": 1}}), "minLength"),
    ("maxLength", obj({"a": {"type": "string", "maxLength": 9}}), "maxLength"),
    (
        "additionalProperties missing at the root",
        {"type": "object", "properties": {"a": {"type": "string"}}},
        "additionalProperties",
    ),
    (
        "additionalProperties missing on a nested object",
        obj({"a": {"type": "object", "properties": {"b": {"type": "string"}}}}),
        "additionalProperties",
    ),
    (
        "additionalProperties true",
        obj({"a": {"type": "string"}}, additionalProperties=True),
        "additionalProperties",
    ),
    ("a type array (uncertain: use anyOf)", obj({"a": {"type": ["string", "null"]}}), "type"),
    ("objects inside enum", obj({"a": {"enum": [{"x": 1}]}}), "enum"),
    ("an external $ref", obj({"a": {"$ref": "http://example.com/schema.json"}}), "$ref"),
    (
        "allOf with $ref",
        {**obj({"a": {"allOf": [{"$ref": "#/$defs/x"}]}}), "$defs": {"x": {"type": "string"}}},
        "$ref",
    ),
    (
        "a recursive schema",
        {**obj({"a": {"$ref": "#/$defs/node"}}), "$defs": {"node": obj({"child": {"$ref": "#/$defs/node"}})}},
        "$ref",
    ),
    ("an unsupported format", obj({"a": {"type": "string", "format": "credit-card"}}), "format"),
    (
        "minItems above 1",
        obj({"a": {"type": "array", "items": {"type": "string"}, "minItems": 2}}),
        "minItems",
    ),
    ("maxItems", obj({"a": {"type": "array", "items": {"type": "string"}, "maxItems": 3}}), "maxItems"),
    (
        "uniqueItems",
        obj({"a": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}),
        "uniqueItems",
    ),
    ("a lookahead in pattern", obj({"a": {"type": "string", "pattern": "^(?=x).*"}}), "pattern"),
    ("a backreference in pattern", obj({"a": {"type": "string", "pattern": r"(a)\1"}}), "pattern"),
    ("a word boundary in pattern", obj({"a": {"type": "string", "pattern": r"\bword\b"}}), "pattern"),
    ("a large repetition range", obj({"a": {"type": "string", "pattern": "a{1,5000}"}}), "pattern"),
    ("oneOf (not in the subset)", obj({"a": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}), "oneOf"),
    (
        "required names an undefined property",
        {**obj({"a": {"type": "string"}}), "required": ["a", "b"]},
        "required",
    ),
]


@pytest.mark.parametrize(("what", "schema"), ACCEPTED, ids=[case[0] for case in ACCEPTED])
def test_the_documented_subset_is_accepted(what: str, schema: dict[str, Any]) -> None:
    assert schema_violations(schema) == []


@pytest.mark.parametrize(("what", "schema", "keyword"), REJECTED, ids=[case[0] for case in REJECTED])
def test_what_the_api_rejects_is_found_with_its_place_and_a_fix(
    what: str, schema: dict[str, Any], keyword: str
) -> None:
    found = schema_violations(schema)
    assert found, what
    assert keyword in {v.keyword for v in found}
    for violation in found:
        assert violation.message and violation.fix
    if what.endswith("nested object"):
        assert [v.path for v in found] == ["properties.a"]
