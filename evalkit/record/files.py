"""Reading a finished run folder back: ``summary.json`` into a :class:`RunRecord`, ``results.jsonl``
into rows."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from evalkit.errors import UsageError
from evalkit.record.model import SCHEMA_VERSION, RunRecord
from evalkit.record.rows import SampleRow


def _invalid(path: Path, exc: ValidationError, line: int | None = None) -> UsageError:
    error = exc.errors()[0]
    where = f"{path}:{line}" if line else str(path)
    key = ".".join(map(str, error["loc"])) or "the top level"
    return UsageError(f"{where}: {key}: {error['msg']}",
                      hint="the file was not written by this evalkit version, or was edited; re-run the task")


def read_record(folder: Path) -> RunRecord:
    """A run folder's ``summary.json`` as a typed :class:`RunRecord` (a :class:`UsageError` when it is
    missing, damaged or of another schema version)."""
    path = folder / "summary.json"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}",
                         hint="give a run folder: reports/<task>/<run-id>/") from None
    try:
        version = json.loads(text).get("schema_version")
    except (ValueError, AttributeError):
        raise UsageError(f"{path} is not valid JSON", hint="re-run the task to write it again") from None
    if version != SCHEMA_VERSION:
        raise UsageError(f"{path} has run-record schema version {version!r}; this evalkit reads version "
                         f"{SCHEMA_VERSION}", hint="re-run the task with this evalkit version")
    try:
        return RunRecord.model_validate_json(text)
    except ValidationError as exc:
        raise _invalid(path, exc) from None


def read_rows(folder: Path) -> list[SampleRow]:
    """A run folder's ``results.jsonl``: one typed :class:`SampleRow` per sample, in sample order."""
    path = folder / "results.jsonl"
    rows = []
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        rows.append(SampleRow.model_validate_json(line))
                    except ValidationError as exc:
                        raise _invalid(path, exc, number) from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    return rows


def run_folder(runs_dir: Path, run_id: str | None, *, task_file: Path | str | None) -> Path:
    """The folder of run ``run_id`` under ``runs_dir`` (default: the latest finished one)."""
    if run_id is None:
        runs = sorted(runs_dir.glob("*/summary.json"), key=lambda p: p.stat().st_mtime)
        if not runs:
            raise UsageError(f"no finished run of '{runs_dir.name}' under {runs_dir}",
                             hint=f"run `evalkit run {task_file or 'TASK.yaml'}` first")
        return runs[-1].parent
    folder = runs_dir / run_id
    if not (folder / "summary.json").exists():
        raise UsageError(f"no run '{run_id}' under {runs_dir}")
    return folder
