"""Structured answers conform to their schema, as grammar-constrained decoding makes them (facts §7)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from evalkit.sim.conform import conform

INVOICE = {
    "type": "object",
    "properties": {
        "vendor": {"type": "string"},
        "invoice_number": {"type": "string"},
        "invoice_date": {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
        "total": {"anyOf": [{"type": "number"}, {"type": "null"}]},
        "line_items": {"type": "array", "items": {
            "type": "object",
            "properties": {"description": {"type": "string"}, "quantity": {"type": "integer"}},
            "required": ["description", "quantity"], "additionalProperties": False}},
    },
    "required": ["vendor", "invoice_number", "invoice_date", "total", "line_items"],
    "additionalProperties": False,
}


def test_a_missing_string_is_an_empty_string_and_null_stays_where_the_schema_allows_it() -> None:
    answer = conform({"vendor": "ACME", "invoice_number": None, "invoice_date": None, "total": None,
                      "line_items": []}, INVOICE)
    assert answer == {"vendor": "ACME", "invoice_number": "", "invoice_date": None, "total": None,
                      "line_items": []}
    jsonschema.validate(answer, INVOICE)


def test_wrong_types_extra_keys_and_missing_required_keys_are_fixed() -> None:
    answer = conform({"vendor": 42, "total": "1,234.50", "surprise": True,
                      "line_items": [{"description": None, "quantity": 2.0, "extra": 1}]}, INVOICE)
    assert answer == {"vendor": "42", "invoice_number": "", "invoice_date": None, "total": None,
                      "line_items": [{"description": "", "quantity": 2}]}
    assert isinstance(answer["line_items"][0]["quantity"], int)
    jsonschema.validate(answer, INVOICE)


@pytest.mark.parametrize(("value", "schema", "expected"), [
    ("Billing", {"type": "string", "enum": ["billing", "technical"]}, "billing"),
    ("nonsense", {"type": "string", "enum": ["billing", "technical"]}, "billing"),
    (None, {"type": "boolean"}, False),
    (None, {"type": "string", "format": "date"}, "1970-01-01"),
    (None, {"const": "v1"}, "v1"),
    (3.7, {"type": "integer"}, 4),
    ("1,234.50", {"type": "number"}, 1234.5),
    (True, {"type": "number"}, 1.0),
    ([], {"type": "array", "items": {"type": "string"}, "minItems": 1}, [""]),
    ("x", {"$ref": "#/$defs/n", "$defs": {"n": {"type": "number"}}}, 0.0),
    ("abc", {"anyOf": [{"type": "number"}, {"type": "null"}]}, None),
])
def test_each_kind_of_value(value: Any, schema: dict[str, Any], expected: Any) -> None:
    result = conform(value, schema)
    assert result == expected and type(result) is type(expected)


def test_a_valid_answer_is_left_alone() -> None:
    answer = {"vendor": "ACME GmbH", "invoice_number": "INV-7", "invoice_date": "2026-03-05", "total": 10,
              "line_items": [{"description": "Widgets", "quantity": 3}]}
    assert conform(answer, INVOICE) == answer
