"""Per-sample results as a flat table (``evalkit export RUN_DIR --format csv|jsonl``).

One row per sample, one column per value, read from a run folder's ``results.jsonl``: the sample (id,
gold, segments, text), each model's answer and call (``candidate_*`` / ``reference_*``: outcome, label or
answer, confidence, escalate, why it was invalid, tokens, cost, mode, batch and request id, cache) and the
scores (agree, each model correct, the per-sample metric values). Nested values (an extraction's fields,
a JSON gold) are JSON text in CSV and stay objects in JSONL. Columns are the same for every row.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from evalkit.record.files import read_rows
from evalkit.record.rows import CallRow, SampleRow

ExportFormat = Literal["csv", "jsonl"]
FORMATS: tuple[ExportFormat, ...] = ("csv", "jsonl")


def _call_columns(role: str, call: CallRow) -> dict[str, Any]:
    answer = call.answer
    usage = call.usage
    value: Any = answer.label if answer.label is not None else (
        answer.fields.get("text") if set(answer.fields) == {"text"} else None)
    columns: dict[str, Any] = {
        "model": call.model, "outcome": answer.outcome,
        "answer": value if value is not None else (answer.fields or None),
        "confidence": answer.confidence, "escalate": answer.escalate,
        "invalid_code": answer.code, "invalid_reason": answer.reason if answer.outcome != "ok" else None,
    }
    if answer.label is not None:
        columns.update({f"field_{name}": field for name, field in answer.fields.items()})
    columns.update({
        "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_input_tokens,
        "cache_write_tokens": usage.cache_creation_input_tokens, "cost_usd": call.cost_usd,
        "stop_reason": call.stop_reason, "mode": call.mode, "batch_id": call.batch_id,
        "request_id": call.request_id, "from_cache": call.from_cache, "error": call.error,
    })
    return {f"{role}_{name}": value for name, value in columns.items()}


def flat_row(row: SampleRow) -> dict[str, Any]:
    """One sample as ``column -> value``."""
    out: dict[str, Any] = {"id": row.id, "gold": row.gold}
    out.update({f"segment_{name}": value for name, value in row.segments.items()})
    out.update(_call_columns("candidate", row.candidate))
    out.update(_call_columns("reference", row.reference))
    scores = row.scores
    out.update({"agree": scores.agree, "candidate_correct": scores.candidate_correct,
                "reference_correct": scores.reference_correct})
    for name, value in (scores.metric_values or {}).items():
        out[f"metric_{name}"] = value
    if scores.threshold is not None:
        out["metric_threshold"] = scores.threshold
    if scores.judge is not None:
        out["judge_equivalent"] = scores.judge
    out["input_hash"] = row.input_hash
    out["text"] = row.text
    return out


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(name for row in rows for name in row))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def export_rows(rows: Iterable[SampleRow], fmt: ExportFormat) -> str:
    """The rows as CSV (header first; empty cell = no value) or JSON Lines (every column on every line)."""
    flat = [flat_row(row) for row in rows]
    columns = _columns(flat)
    if fmt == "jsonl":
        return "".join(json.dumps({name: row.get(name) for name in columns}, ensure_ascii=False) + "\n"
                       for row in flat)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in flat:
        writer.writerow([_cell(row.get(name)) for name in columns])
    return buffer.getvalue()


def export_run(run_dir: str | Path, fmt: ExportFormat = "csv") -> tuple[str, int]:
    """A run folder's per-sample results as CSV or JSON Lines text, and how many samples."""
    rows = read_rows(Path(run_dir))
    return export_rows(rows, fmt), len(rows)
