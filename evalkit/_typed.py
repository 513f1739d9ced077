"""The base of every typed record evalkit writes or reads (summary.json, results.jsonl, routing.json)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Typed(BaseModel):
    """Strict and immutable: an unknown key is an error, never silently kept or dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
