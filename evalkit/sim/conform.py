"""Structured answers that match the request's schema, as grammar-constrained decoding guarantees.

With ``output_config.format`` the real API constrains the model's final text to the JSON schema: a
field typed ``string`` is a string even when the document holds no value for it (facts §7). The
simulated models compute their answers first and may have nothing for a field; :func:`conform` then
writes what a constrained model would — the value when it fits, else the nearest value the schema
allows: ``null`` where the schema permits it, otherwise an empty value of the right type (``""``, ``0``,
``false``, ``[]``), the first ``enum`` value, or a well-formed placeholder for a string ``format``.
Only refusals and ``max_tokens`` truncations break the schema, as on the API.
"""

from __future__ import annotations

from typing import Any

#: Well-formed values for the string formats structured outputs support (facts §7).
FORMAT_PLACEHOLDERS = {
    "date-time": "1970-01-01T00:00:00Z", "time": "00:00:00", "date": "1970-01-01", "duration": "P0D",
    "email": "unknown@example.com", "hostname": "example.com", "uri": "https://example.com/",
    "ipv4": "0.0.0.0", "ipv6": "::", "uuid": "00000000-0000-0000-0000-000000000000",
}


def conform(value: Any, schema: dict[str, Any]) -> Any:
    """``value`` made valid against ``schema`` (a schema from the structured-outputs subset)."""
    definitions = {**(schema.get("$defs") or {}), **(schema.get("definitions") or {})}
    return _conform(value, schema, definitions, depth=0)


def _resolve(schema: Any, definitions: dict[str, Any]) -> dict[str, Any]:
    for _ in range(32):
        if not isinstance(schema, dict) or "$ref" not in schema:
            break
        target = definitions.get(str(schema["$ref"]).split("/")[-1], {})
        schema = {**{k: v for k, v in schema.items() if k != "$ref"}, **target}
    if isinstance(schema, dict) and "allOf" in schema:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = _resolve(part, definitions)
            merged = {**merged, **part,
                      "properties": {**merged.get("properties", {}), **part.get("properties", {})},
                      "required": [*merged.get("required", []), *part.get("required", [])]}
        return merged
    return schema if isinstance(schema, dict) else {}


def _kinds(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, list):
        return [str(k) for k in kind]
    if kind is not None:
        return [str(kind)]
    return ["object"] if "properties" in schema else []


def _conform(value: Any, schema: Any, definitions: dict[str, Any], *, depth: int) -> Any:
    schema = _resolve(schema, definitions)
    if depth > 32:
        return value
    if "const" in schema:
        return schema["const"]
    if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
        options = schema["enum"]
        if any(value == option and type(value) is type(option) for option in options):
            return value
        if isinstance(value, str):
            for option in options:
                if isinstance(option, str) and option.lower() == value.strip().lower():
                    return option
        return None if None in options else options[0]
    if "anyOf" in schema and isinstance(schema["anyOf"], list) and schema["anyOf"]:
        options = schema["anyOf"]
        for option in options:
            if _fits(value, option, definitions):
                return _conform(value, option, definitions, depth=depth + 1)
        if any(_kinds(_resolve(option, definitions)) == ["null"] for option in options):
            return None  # nothing fits: the schema allows null
        return _conform(value, options[0], definitions, depth=depth + 1)
    kinds = _kinds(schema)
    if not kinds:
        return value
    if value is None and "null" in kinds:
        return None
    for kind in kinds:
        if _fits_kind(value, kind):
            return _as_kind(value, kind, schema, definitions, depth)
    return _as_kind(value, kinds[0], schema, definitions, depth)


def _fits(value: Any, schema: Any, definitions: dict[str, Any]) -> bool:
    schema = _resolve(schema, definitions)
    if "const" in schema:
        return bool(value == schema["const"])
    if "enum" in schema:
        return value in schema["enum"]
    if "anyOf" in schema:
        return any(_fits(value, option, definitions) for option in schema["anyOf"])
    kinds = _kinds(schema)
    return not kinds or any(_fits_kind(value, kind) for kind in kinds)


def _fits_kind(value: Any, kind: str) -> bool:
    return {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool)
        or isinstance(value, float) and value.is_integer(),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "null": value is None,
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
    }.get(kind, False)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace(",", "").strip())
        except ValueError:
            return None
    return None


def _as_kind(value: Any, kind: str, schema: dict[str, Any], definitions: dict[str, Any], depth: int) -> Any:
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(int(value)) if float(value).is_integer() else str(value)
        return FORMAT_PLACEHOLDERS.get(str(schema.get("format")), "")
    if kind in ("integer", "number"):
        number = _number(value)
        number = 0.0 if number is None else number
        if kind == "integer":
            return int(round(number))
        return int(number) if isinstance(value, int) and not isinstance(value, bool) else number
    if kind == "boolean":
        if isinstance(value, str):
            return value.strip().lower() in ("true", "yes", "1")
        return bool(value) if isinstance(value, int | float) else False
    if kind == "null":
        return None
    if kind == "array":
        items = value if isinstance(value, list) else []
        item_schema = schema.get("items") or {}
        conformed = [_conform(item, item_schema, definitions, depth=depth + 1) for item in items]
        if not conformed and schema.get("minItems") == 1:
            conformed = [_conform(None, item_schema, definitions, depth=depth + 1)]
        return conformed
    if kind == "object":
        given = value if isinstance(value, dict) else {}
        properties = schema.get("properties") or {}
        required = [name for name in schema.get("required") or [] if name in properties]
        out: dict[str, Any] = {}
        for name, sub in properties.items():
            if name in given:
                out[name] = _conform(given[name], sub, definitions, depth=depth + 1)
            elif name in required:
                out[name] = _conform(None, sub, definitions, depth=depth + 1)
        extra = schema.get("additionalProperties", False)
        if isinstance(extra, dict):
            for name, item in given.items():
                if name not in properties:
                    out[name] = _conform(item, extra, definitions, depth=depth + 1)
        return out
    return value
