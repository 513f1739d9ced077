"""Recorded answers for either side (``models.reference_log`` / ``models.candidate_log``): scored exactly like
called ones, paid for by nobody now, and never presented as simulated.

A log is a table (JSONL, JSON, CSV/TSV, Parquet, Arrow) with a sample id per row and the answer in one of the
forms users have: a Messages API message, the task's JSON answer (as text or as an object), a plain label or
text, or the answer's fields in columns of their own. Each answer becomes the Message the API would have
returned, so the same parser judges it; confidence and escalate are optional when the log has neither.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.datasets import SampleSet
from evalkit.errors import DatasetError
from evalkit.prompts.render import ModelRequest
from evalkit.providers.base import ModelResponse
from evalkit.providers.execute import CallResult
from evalkit.spec import AnswerLog, OutputSpec, TaskSpec
from evalkit.tabular import read_table


@dataclass(frozen=True)
class LoggedAnswers:
    role: str
    path: Path
    calls: list[CallResult]
    #: The answer spec the log's answers are parsed with: fields the log never has are optional.
    output: OutputSpec


def _place(task: TaskSpec, role: str) -> str:
    key = f"models.{role}_log"
    line = task.source.line_of(key) if task.source else None
    return f"{task.task_file}:{line}: {key}" if line else key


def _answer(entry: dict[str, Any], log: AnswerLog, output: OutputSpec,
            where: str) -> tuple[str, dict[str, Any] | None]:
    """(answer text as the model would have written it, the Message when the log has one)."""
    kind = log.format
    message = entry.get("message")
    if isinstance(message, str) and kind in ("auto", "message"):
        try:
            message = json.loads(message)
        except json.JSONDecodeError:
            message = None
    if kind == "message" or (kind == "auto" and isinstance(message, dict)):
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            raise DatasetError(f"{where}: format message needs a Messages API message in column 'message'",
                               hint="or set format: json / text / fields for this log")
        return "", message
    if kind == "fields":
        missing = [column for column in log.fields.values() if column not in entry]
        if missing:
            raise DatasetError(f"{where}: columns {', '.join(missing)} (named in fields) are not in the log",
                               hint=f"columns here: {', '.join(sorted(entry))}")
        answer = {name: _typed(entry[column], name, output) for name, column in log.fields.items()}
        return json.dumps(answer), None
    if log.answer_field not in entry:
        raise DatasetError(f"{where}: no '{log.answer_field}' column with the answer",
                           hint=f"set answer_field (columns here: {', '.join(sorted(entry))}), or format: "
                                "fields")
    value = entry[log.answer_field]
    if isinstance(value, dict):
        return json.dumps(value), None
    text = "" if value is None else str(value)
    if kind in ("auto", "json") and output.kind != "text":
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            return text, None
        if kind == "json":
            return text, None  # left as it is: the parser reports it invalid, with the reason
    if output.kind == "classification":
        return json.dumps({output.label_field: text.strip()}), None
    return text, None


def _typed(value: Any, name: str, output: OutputSpec) -> Any:
    """A CSV cell as the answer field's type (confidence a number, escalate a boolean)."""
    if not isinstance(value, str):
        return value
    if name == output.confidence_field:
        try:
            return float(value)
        except ValueError:
            return value
    if name == output.escalate_field:
        return {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}.get(
            value.strip().lower(), value)
    return value


def _optional_fields(output: OutputSpec, answers: list[dict[str, Any]]) -> OutputSpec:
    """The task's answer spec without the fields no logged answer has (a plain label has no confidence)."""
    present = {key for answer in answers for key in answer}
    update: dict[str, Any] = {}
    if output.confidence_field and output.confidence_field not in present:
        update["confidence_field"] = None
    if output.escalate_field and output.escalate_field not in present:
        update["escalate_field"] = None
    kept = {name: kind for name, kind in output.fields.items() if name in present}
    if kept != output.fields:
        update["fields"] = kept
    return output.model_copy(update=update) if update else output


def load_log(task: TaskSpec, role: str, samples: SampleSet) -> LoggedAnswers:
    """The role's recorded answers for every sampled id, as calls that cost nothing now."""
    log = task.models.log(role)
    assert log is not None
    model = task.models.role(role).model
    path = Path(log.path)
    path = path if path.is_absolute() else task.base_dir / path
    try:
        table = read_table(path)
    except DatasetError as error:
        raise DatasetError(f"{_place(task, role)}: {error.message}", hint=error.hint) from None
    by_id: dict[str, tuple[dict[str, Any], str]] = {}
    for row, place in zip(table.rows, table.places, strict=True):
        if log.id_field not in row:
            raise DatasetError(f"{place}: no '{log.id_field}' column with the sample id",
                               hint=f"set id_field in models.{role}_log (columns: {', '.join(sorted(row))})")
        by_id[str(row[log.id_field])] = (row, place)
    missing = [s.id for s in samples.samples if s.id not in by_id]
    if missing:
        raise DatasetError(f"{path}: no recorded {role} response for {len(missing)} sampled ids "
                           f"(e.g. {', '.join(missing[:5])})", hint="log every sampled id, or sample from "
                                                                    "logged ids")
    calls, objects = [], []
    for sample in samples.samples:
        entry, place = by_id[sample.id]
        text, message = _answer(entry, log, task.output, place)
        if message is None:
            message = {"type": "message", "role": "assistant", "model": model, "stop_reason": "end_turn",
                       "content": [{"type": "text", "text": text}], "usage": {}}
        else:
            text = "".join(block.get("text", "") for block in message["content"]
                           if block.get("type") == "text")
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            objects.append(parsed)
        request = ModelRequest(sample_id=sample.id, role=role, params={"model": model})
        response = ModelResponse(message=message, mode="log")
        calls.append(CallResult(request=request, response=response, error=None, from_cache=True))
    output = _optional_fields(task.output, objects) if objects else task.output
    return LoggedAnswers(role=role, path=path, calls=calls, output=output)
