"""Model ids the simulator answers to, as the real API knows them (Nov 2026).

Aliases resolve to their dated snapshot in the response ``model`` field, as the real API does. Retired
ids (and anything unknown) get the API's 404 ``not_found_error``.
"""

from __future__ import annotations

#: id -> id reported back in responses
MODELS: dict[str, str] = {
    "claude-haiku-5-5": "claude-haiku-5-5",
    "claude-sonnet-5-5": "claude-sonnet-5-5",
    "claude-opus-5-5": "claude-opus-5-5",
    "claude-fable-5-2": "claude-fable-5-2",
    "claude-mythos-5-2": "claude-mythos-5-2",
    "claude-fable-5-1": "claude-fable-5-1",
    "claude-mythos-5-1": "claude-mythos-5-1",
    "claude-sonnet-5": "claude-sonnet-5",
    "claude-fable-5": "claude-fable-5",
    "claude-mythos-5": "claude-mythos-5",
    "claude-opus-5": "claude-opus-5",
    "claude-opus-4-8": "claude-opus-4-8",
    "claude-opus-4-7": "claude-opus-4-7",
    "claude-opus-4-6": "claude-opus-4-6",
    "claude-sonnet-4-6": "claude-sonnet-4-6",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-haiku-4-5-20251001": "claude-haiku-4-5-20251001",
    "claude-opus-4-5": "claude-opus-4-5-20251101",
    "claude-opus-4-5-20251101": "claude-opus-4-5-20251101",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-sonnet-4-5-20250929": "claude-sonnet-4-5-20250929",
}

def resolve(model: str) -> str | None:
    return MODELS.get(model)
