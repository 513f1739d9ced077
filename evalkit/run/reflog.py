"""Reference answers from recorded production responses (``models.reference_log``), instead of calling it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evalkit.datasets import SampleSet
from evalkit.errors import DatasetError
from evalkit.prompts.render import ModelRequest
from evalkit.providers.base import ModelResponse
from evalkit.providers.execute import CallResult
from evalkit.spec import TaskSpec


def load_reference_log(task: TaskSpec, samples: SampleSet) -> list[CallResult]:
    """Reference answers from recorded production responses, as calls that cost nothing now."""
    path = Path(str(task.models.reference_log))
    path = path if path.is_absolute() else task.base_dir / path
    where = task.source.line_of("models.reference_log") if task.source else None
    place = f"{task.task_file}:{where}" if where else str(task.task_file)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        bad_line = path.read_bytes().count(b"\n", 0, exc.start) + 1
        raise DatasetError(f"{path}:{bad_line}: models.reference_log is not UTF-8 text ({exc.reason})",
                           hint="save the log as UTF-8") from None
    except OSError as exc:
        raise DatasetError(f"{place}: models.reference_log: cannot read {path}: {exc.strerror}") from None
    by_id: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(entry, dict) or "id" not in entry or not ("output" in entry or "message" in entry):
            raise DatasetError(f"{path}:{number}: each line needs 'id' and 'output' (text) or 'message' "
                               "(Message JSON)")
        by_id[str(entry["id"])] = entry
    missing = [s.id for s in samples.samples if s.id not in by_id]
    if missing:
        raise DatasetError(f"{path}: no recorded reference response for {len(missing)} sampled ids "
                           f"(e.g. {', '.join(missing[:5])})",
                           hint="log every sampled id, or sample from logged ids")
    calls = []
    for sample in samples.samples:
        entry = by_id[sample.id]
        message = entry.get("message") or {
            "type": "message", "role": "assistant", "model": task.models.reference.model,
            "stop_reason": "end_turn",
            "content": [{"type": "text", "text": str(entry["output"])}], "usage": {}}
        request = ModelRequest(sample_id=sample.id, role="reference",
                               params={"model": task.models.reference.model})
        calls.append(CallResult(request=request, response=ModelResponse(message=message, mode="log"),
                                error=None, from_cache=True))
    return calls
