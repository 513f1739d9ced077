"""Prompt caching plan: which requests get a ``cache_control`` breakpoint, with which TTL, and why.

The breakpoint goes on the static system block (instructions, label descriptions, few-shot examples;
the JSON schema comes with it) and, when the task has ``input.static_documents``, on the last of those
documents (they open the first user turn); never on the per-sample user message or its documents and
images, which differ in every request. It is added only when the prefix
reaches the model's documented minimum cacheable length (shorter prefixes are silently not cached), and
evalkit says so when it does not. The length is estimated offline with evalkit's stand-in tokenizer so
the request bodies, and therefore the response-cache keys, never depend on a network call.

TTL: batches use the 1-hour cache (the documented recipe: a warm-up request writes it, the rest of the
batch reads it); real-time runs use the default 5 minutes, refreshed by every hit.
"""

from __future__ import annotations

import json
from typing import Any

from evalkit import media
from evalkit._typed import Typed
from evalkit.datasets import static_attachments
from evalkit.modelinfo import min_cacheable_tokens
from evalkit.spec import TaskSpec
from evalkit.tokens import count_tokens


class CachePlan(Typed):
    """Whether one model's requests carry a prompt-cache breakpoint, with which TTL, and why."""

    model: str
    prefix_tokens: int  # estimate of the static prefix (system + schema)
    minimum: int
    minimum_known: bool
    enabled: bool
    ttl: str | None  # "5m" | "1h" | None when disabled
    reason: str


def estimate_prefix_tokens(system: str, schema: dict[str, Any] | None) -> int:
    return count_tokens(system) + (count_tokens(json.dumps(schema, sort_keys=True)) if schema else 0)


def static_document_tokens(task: TaskSpec, model: str) -> int:
    """Tokens of ``input.static_documents`` (part of the cached prefix; per-sample files never are)."""
    if not task.input.static_documents:
        return 0
    return sum(media.block_tokens(a.block(), model) for a in static_attachments(task))


def plan_caching(task: TaskSpec, systems: dict[str, str], schema: dict[str, Any] | None, *,
                 mode: str) -> dict[str, CachePlan]:
    """The caching decision for each role's model, from the system prompt that role is sent."""
    ttl = task.prompt.cache_ttl if task.prompt.cache_ttl != "auto" else ("1h" if mode == "batch" else "5m")
    plans = {}
    for role in ("candidate", "reference"):
        model = task.models.role(role).model
        prefix = estimate_prefix_tokens(systems[role], schema) + static_document_tokens(task, model)
        minimum, known = min_cacheable_tokens(model)
        qualifier = "" if known else " (assumed: evalkit does not know this model's minimum)"
        if task.prompt.cache == "off":
            plans[role] = CachePlan(model=model, prefix_tokens=prefix, minimum=minimum, minimum_known=known,
                                    enabled=False, ttl=None,
                                    reason="prompt caching is turned off in the task (prompt.cache: off)")
        elif prefix < minimum:
            plans[role] = CachePlan(
                model=model, prefix_tokens=prefix, minimum=minimum, minimum_known=known, enabled=False,
                ttl=None, reason=f"the static prefix is about {prefix} tokens, below {model}'s minimum "
                f"cacheable length of {minimum}{qualifier}; the API would silently not cache it. Longer "
                "instructions or few-shot examples in prompt.system would make it cacheable")
        else:
            plans[role] = CachePlan(model=model, prefix_tokens=prefix, minimum=minimum, minimum_known=known,
                                    enabled=True, ttl=ttl,
                                    reason=f"static prefix of about {prefix} tokens ≥ {minimum}{qualifier}: "
                                    f"cached with a {ttl} TTL")
    return plans


def media_tokens(params: dict[str, Any]) -> tuple[int, int]:
    """(prefix, per-sample) tokens of a request's documents and images, for estimates before sending.

    Blocks up to the last ``cache_control`` in ``messages`` (the task's static documents) are prefix;
    every other document or image is billed as ordinary input. Formulas: :mod:`evalkit.media`."""
    model = str(params.get("model") or "")
    blocks = [block for message in params.get("messages") or []
              for block in (message.get("content") if isinstance(message.get("content"), list) else [])
              if isinstance(block, dict)]
    last = max((i for i, block in enumerate(blocks) if "cache_control" in block), default=-1)
    prefix = sum(media.block_tokens(block, model) for block in blocks[:last + 1])
    return prefix, sum(media.block_tokens(block, model) for block in blocks[last + 1:])
