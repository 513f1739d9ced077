"""The JSON Schema subset that structured outputs accept — one implementation for evalkit and its simulator.

Source: docs/reference/anthropic-facts.md §7 (the platform's "JSON Schema limitations"): an unsupported
feature is a 400 from the API. ``evalkit validate``/``lint`` and every run check the task's output schema
with :func:`schema_violations` before anything is sent, and the offline simulator rejects the same schemas
with the same rules, so a schema the API would refuse never passes offline.

Where the facts are silent (JSON-Schema type arrays such as ``"type": ["string", "null"]``), the rules
refuse the uncertain form and name the certainly-accepted one (``anyOf``), as the SDK's own
``transform_schema`` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})
FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)
#: Keywords that only annotate (never constrain) and are accepted anywhere.
ANNOTATIONS = frozenset(
    {"title", "description", "examples", "$comment", "deprecated", "readOnly", "writeOnly", "default"}
)
SUPPORTED = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "anyOf",
        "allOf",
        "$ref",
        "$defs",
        "definitions",
        "format",
        "pattern",
        "minItems",
    }
)
NUMERIC = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"})
STRING = frozenset({"minLength", "maxLength"})
ARRAY = frozenset(
    {"maxItems", "uniqueItems", "contains", "minContains", "maxContains", "prefixItems", "unevaluatedItems"}
)
#: Regex features structured outputs do not support in ``pattern``.
_BAD_PATTERN = re.compile(r"\\[1-9]|\(\?[=!<]|\\[bB]|\{\d*,?(\d{3,})\}")
_MAX_DEPTH = 32


@dataclass(frozen=True)
class Violation:
    """One part of a schema structured outputs would reject (HTTP 400), with where and how to fix it."""

    path: str  # JSON-pointer-like location inside the schema, e.g. "properties.total"
    keyword: str
    message: str
    fix: str

    def render(self, prefix: str = "") -> str:
        where = f"{prefix}.{self.path}" if prefix and self.path else prefix or self.path or "(schema root)"
        return f"{where}: {self.message}"


def _join(path: str, *parts: str | int) -> str:
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else (f"{path}.{part}" if path else str(part))
    return path


def schema_violations(schema: Any) -> list[Violation]:
    """Everything in ``schema`` the structured-outputs feature rejects, in document order."""
    found: list[Violation] = []
    if not isinstance(schema, dict):
        return [Violation("", "type", "the schema must be a JSON object", "give a JSON Schema object")]
    definitions = {**(schema.get("$defs") or {}), **(schema.get("definitions") or {})}
    _check(schema, "", found, definitions, depth=0)
    cycle = _recursion(definitions)
    if cycle:
        found.append(
            Violation(
                f"$defs.{cycle[0]}",
                "$ref",
                f"recursive schemas are not supported ({' -> '.join(cycle)})",
                "unroll the recursion to a fixed depth",
            )
        )
    return found


def _refs(node: Any) -> set[str]:
    """Names of the definitions a subschema refers to."""
    if isinstance(node, dict):
        found = {str(node["$ref"]).split("/")[-1]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node)) if node else set()
    return set()


def _recursion(definitions: dict[str, Any]) -> list[str] | None:
    """A cycle of $refs between definitions, if any (depth-first search)."""
    graph = {name: _refs(sub) & set(definitions) for name, sub in definitions.items()}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> list[str] | None:
        if name in visiting:
            return [*visiting[visiting.index(name) :], name]
        if name in done:
            return None
        visiting.append(name)
        for target in sorted(graph[name]):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(name)
        return None

    for name in sorted(graph):
        cycle = visit(name)
        if cycle:
            return cycle
    return None


def _check(node: Any, path: str, found: list[Violation], definitions: dict[str, Any], *, depth: int) -> None:
    if depth > _MAX_DEPTH:
        found.append(
            Violation(path, "$ref", "Schema is too complex (nested too deeply)", "flatten the schema")
        )
        return
    if not isinstance(node, dict):
        found.append(
            Violation(path, "type", "each subschema must be a JSON object", "replace it by an object")
        )
        return
    for keyword in node:
        if keyword in SUPPORTED or keyword in ANNOTATIONS:
            continue
        if keyword in NUMERIC:
            found.append(
                Violation(
                    path,
                    keyword,
                    f"'{keyword}' is not supported (numeric constraints are not)",
                    f"remove '{keyword}' and check the bound when the answer is parsed",
                )
            )
        elif keyword in STRING:
            found.append(
                Violation(
                    path,
                    keyword,
                    f"'{keyword}' is not supported (string length constraints are not)",
                    f"remove '{keyword}'",
                )
            )
        elif keyword in ARRAY:
            found.append(
                Violation(path, keyword, f"'{keyword}' is not supported for arrays", f"remove '{keyword}'")
            )
        else:
            found.append(
                Violation(
                    path,
                    keyword,
                    f"keyword '{keyword}' is not supported by structured outputs",
                    f"remove '{keyword}' (supported: {', '.join(sorted(SUPPORTED))})",
                )
            )
    kind = node.get("type")
    kinds: list[Any] = []
    if isinstance(kind, list):
        found.append(
            Violation(
                path,
                "type",
                f"a type array {kind} is not a form structured outputs are known to accept",
                "use anyOf: [{type: …}, {type: null}] instead of a list of types",
            )
        )
        kinds = list(kind)
    elif kind is not None:
        kinds = [kind]
        if kind not in TYPES:
            found.append(
                Violation(path, "type", f"unknown type {kind!r}", f"use one of {', '.join(sorted(TYPES))}")
            )
    if "enum" in node:
        values = node["enum"]
        if not isinstance(values, list) or not values:
            found.append(Violation(path, "enum", "enum must be a non-empty list", "list the allowed values"))
        elif any(isinstance(v, dict | list) for v in values):
            found.append(
                Violation(
                    path,
                    "enum",
                    "complex types (objects, arrays) inside enum are not supported",
                    "enum values must be strings, numbers, booleans or null",
                )
            )
    if "format" in node and node["format"] not in FORMATS:
        found.append(
            Violation(
                path,
                "format",
                f"string format {node['format']!r} is not supported",
                f"remove it or use one of {', '.join(sorted(FORMATS))}",
            )
        )
    if "pattern" in node:
        pattern = node["pattern"]
        if not isinstance(pattern, str):
            found.append(Violation(path, "pattern", "pattern must be a string", "give a regular expression"))
        else:
            bad = _BAD_PATTERN.search(pattern)
            if bad:
                found.append(
                    Violation(
                        path,
                        "pattern",
                        f"pattern feature {bad.group(0)!r} (backreferences, "
                        "lookaround, word boundaries, large repetition ranges) is not supported",
                        "simplify the regular expression",
                    )
                )
    if "minItems" in node and node["minItems"] not in (0, 1):
        found.append(
            Violation(
                path,
                "minItems",
                f"minItems {node['minItems']!r} is not supported (only 0 or 1)",
                "use minItems 0 or 1 and check the count when the answer is parsed",
            )
        )
    is_object = "object" in kinds or ("properties" in node and not kinds)
    if is_object:
        extra = node.get("additionalProperties", "missing")
        if extra is not False:
            state = "is missing" if extra == "missing" else f"is {extra!r}"
            found.append(
                Violation(
                    path,
                    "additionalProperties",
                    f"additionalProperties {state}; structured outputs need it to be false on every object",
                    "add additionalProperties: false",
                )
            )
        properties = node.get("properties") or {}
        if not isinstance(properties, dict):
            found.append(
                Violation(path, "properties", "properties must be an object", "map names to schemas")
            )
            properties = {}
        required = node.get("required")
        if required is not None:
            if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
                found.append(
                    Violation(
                        path, "required", "required must be a list of property names", "list property names"
                    )
                )
            else:
                for name in required:
                    if name not in properties:
                        found.append(
                            Violation(
                                path,
                                "required",
                                f"required property {name!r} is not defined in properties",
                                f"define {name!r} or remove it from required",
                            )
                        )
        for name, sub in properties.items():
            _check(sub, _join(path, "properties", name), found, definitions, depth=depth + 1)
    elif isinstance(node.get("additionalProperties"), dict):
        _check(
            node["additionalProperties"],
            _join(path, "additionalProperties"),
            found,
            definitions,
            depth=depth + 1,
        )
    if "items" in node:
        _check(node["items"], _join(path, "items"), found, definitions, depth=depth + 1)
    for keyword in ("anyOf", "allOf"):
        if keyword in node:
            options = node[keyword]
            if not isinstance(options, list) or not options:
                found.append(
                    Violation(path, keyword, f"{keyword} must be a non-empty list", "list subschemas")
                )
                continue
            for index, sub in enumerate(options):
                if keyword == "allOf" and isinstance(sub, dict) and "$ref" in sub:
                    found.append(
                        Violation(
                            _join(path, keyword, index),
                            "$ref",
                            "allOf with $ref is not supported",
                            "inline the referenced schema",
                        )
                    )
                _check(sub, _join(path, keyword, index), found, definitions, depth=depth + 1)
    for keyword in ("$defs", "definitions"):
        for name, sub in (node.get(keyword) or {}).items() if depth == 0 else ():
            _check(sub, _join(path, keyword, name), found, definitions, depth=depth + 1)
    if "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            found.append(
                Violation(
                    path,
                    "$ref",
                    f"external $ref {ref!r} is not supported",
                    "define it under $defs and point at '#/$defs/<name>'",
                )
            )
        else:
            name = ref.split("/")[-1]
            if name not in definitions:
                found.append(
                    Violation(
                        path, "$ref", f"$ref {ref!r} points at no definition", f"define {name!r} under $defs"
                    )
                )
