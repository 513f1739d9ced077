"""Synthetic requests for the fast tier (built directly, no task file needed), and a small ticket task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evalkit.prompts.render import ModelRequest
from evalkit.providers.batching import BatchReport
from evalkit.providers.execute import CallResult, ExecutionStats

#: What execute_batch returns.
Result = tuple[list[CallResult], ExecutionStats, BatchReport]


class Crash(Exception):
    """Stands in for the process dying at that point."""


async def no_sleep(_: float) -> None:
    """A sleep that returns at once: backoffs and polls cost no time in the fast tier."""
    return None

CANDIDATE, REFERENCE = "claude-haiku-5-5", "claude-sonnet-5-5"
SCHEMA = {
    "type": "object",
    "properties": {"category": {"type": "string", "enum": ["billing", "technical"]},
                   "confidence": {"type": "number"}},
    "required": ["category", "confidence"],
    "additionalProperties": False,
}


def request(sample: int, model: str = CANDIDATE, *, replicate: int = 0) -> ModelRequest:
    """A structured classification request for sample ``sample`` (same arguments, same body)."""
    role = "candidate" if model == CANDIDATE else "reference"
    params = {
        "model": model,
        "max_tokens": 50,
        "system": [{"type": "text", "text": "Classify the ticket."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": f"ticket number {sample}"}]}],
        "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
    }
    return ModelRequest(sample_id=f"s{sample}", role=role, params=params, replicate=replicate)


def requests(count: int, models: tuple[str, ...] = (CANDIDATE, REFERENCE)) -> list[ModelRequest]:
    """``count`` samples, one request per model each, interleaved as a run builds them."""
    return [request(i, model) for i in range(count) for model in models]


LABELS = ["billing", "technical"]
CLASSIFY = """\
name: tickets
dataset: {path: d.jsonl, label_column: category}
sample: {size: 60, seed: 1}
prompt:
  system: Route the ticket to billing or technical.
  user: "{{ text }}"
output:
  label_field: category
  labels: [billing, technical]
models: {candidate: claude-haiku-5-5, reference: claude-sonnet-5-5}
decision: {margin: MARGIN, sequential_every: 20}
"""


def write_task(tmp_path: Path, task: str, rows: list[dict[str, Any]]) -> Path:
    """A task, its rows and fast-polling settings in ``tmp_path``."""
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    # Batch polling at 10 ms: the fake's batches end after a poll or two, and no test should wait for them.
    settings = '[evalkit]\ncache_dir = ".evalkit/cache"\nreports_dir = "reports"\n'
    (tmp_path / "evalkit.toml").write_text(settings + "[batch]\npoll_initial_s = 0.01\npoll_max_s = 0.01\n")
    path = tmp_path / "task.yaml"
    path.write_text(task)
    return path


def tickets(tmp_path: Path, count: int = 60, margin: float = 0.05) -> tuple[Path, dict[str, str]]:
    """The two-label ticket task over ``count`` rows, and each text's gold label."""
    rows = [{"id": f"t{i:03d}", "text": f"ticket {i}: my {'invoice' if i % 2 else 'login page'} is wrong",
             "category": LABELS[i % 2]} for i in range(count)]
    gold = {row["text"]: row["category"] for row in rows}
    return write_task(tmp_path, CLASSIFY.replace("MARGIN", str(margin)), rows), gold
