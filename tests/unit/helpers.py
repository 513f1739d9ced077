"""Synthetic requests for the fast tier (built directly, no task file needed)."""

from __future__ import annotations

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
