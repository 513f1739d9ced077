"""Per-model facts evalkit needs on the client side (source: docs/reference/anthropic-facts.md §3).

Shared with the simulator on purpose: it must apply the same documented limits as the real API.
"""

from __future__ import annotations

import fnmatch

#: Minimum cacheable prompt length in tokens (shorter prefixes are silently not cached).
#: First matching pattern wins. Haiku 5.5 / Sonnet 5.5 = 512 is from third-party sources (⚠️ in the facts).
MIN_CACHEABLE_TOKENS: tuple[tuple[str, int], ...] = (
    ("claude-haiku-5-5*", 512),
    ("claude-sonnet-5-5*", 512),
    ("claude-opus-5*", 512),
    ("claude-fable-5*", 512),
    ("claude-mythos-5*", 512),
    ("claude-opus-4-7*", 2048),
    ("claude-mythos-preview*", 2048),
    ("claude-opus-4-6*", 4096),
    ("claude-opus-4-5*", 4096),
    ("claude-haiku-4-5*", 4096),
    ("claude-opus-4-8*", 1024),
    ("claude-sonnet-5*", 1024),
    ("claude-sonnet-4*", 1024),
    ("claude-opus-4*", 1024),
)
#: Assumed for a model the table does not know (the most common documented minimum).
DEFAULT_MIN_CACHEABLE_TOKENS = 1024


def min_cacheable_tokens(model: str) -> tuple[int, bool]:
    """(minimum, known): the model's documented minimum cacheable prefix, or the default."""
    for pattern, minimum in MIN_CACHEABLE_TOKENS:
        if fnmatch.fnmatchcase(model, pattern):
            return minimum, True
    return DEFAULT_MIN_CACHEABLE_TOKENS, False


#: Largest ``max_tokens`` each model accepts (docs/reference/anthropic-facts.md §4: "ctx / max out").
MAX_OUTPUT_TOKENS: tuple[tuple[str, int], ...] = (
    ("claude-haiku-4-5*", 64_000),
    ("claude-sonnet-4-5*", 64_000),
    ("claude-*", 128_000),
)

#: Models that think adaptively unless ``thinking: {"type": "disabled"}`` is sent (facts §4 and §8).
ADAPTIVE_THINKING_BY_DEFAULT: tuple[str, ...] = ("claude-haiku-5-5*", "claude-sonnet-5-5*", "claude-sonnet-5",
                                                 "claude-opus-5-5*", "claude-opus-5")

#: The effort a model uses when the request does not say (facts §4: Haiku 5.5 medium, Sonnet 5.5 high).
DEFAULT_EFFORT: tuple[tuple[str, str], ...] = (
    ("claude-haiku-5-5*", "medium"),
    ("claude-sonnet-5-5*", "high"),
    ("claude-opus-5*", "high"),
    ("claude-sonnet-5", "high"),
)
EFFORTS = ("low", "medium", "high", "xhigh", "max")

#: evalkit's planning assumption for the thinking tokens of one short answer at each effort level. The
#: API documents no such numbers: these drive the estimate's max_tokens warning and the simulator's
#: thinking length, and every measured run replaces them with its own output-token distribution.
TYPICAL_THINKING_TOKENS: dict[str, int] = {"low": 120, "medium": 450, "high": 1200, "xhigh": 2500,
                                           "max": 5000}


def _first(table: tuple[tuple[str, object], ...], model: str) -> object | None:
    for pattern, value in table:
        if fnmatch.fnmatchcase(model, pattern):
            return value
    return None


#: Models whose batches accept ``max_tokens`` up to 300k with the beta header ``output-300k-2026-03-24``
#: (facts §2: "Opus 4.6+, Sonnet 4.6+", batches only).
EXTENDED_BATCH_OUTPUT_MODELS: tuple[str, ...] = ("claude-opus-4-6*", "claude-opus-4-7*", "claude-opus-4-8*",
                                                 "claude-opus-5*", "claude-sonnet-4-6*", "claude-sonnet-5*")
EXTENDED_BATCH_OUTPUT_BETA = "output-300k-2026-03-24"
EXTENDED_BATCH_OUTPUT_TOKENS = 300_000


def max_output_tokens(model: str, *, extended_batch: bool = False) -> int:
    """The largest ``max_tokens`` the API accepts for ``model`` (``extended_batch``: a batch item sent with
    the ``output-300k-2026-03-24`` beta header)."""
    extended = any(fnmatch.fnmatchcase(model, pattern) for pattern in EXTENDED_BATCH_OUTPUT_MODELS)
    if extended_batch and extended:
        return EXTENDED_BATCH_OUTPUT_TOKENS
    value = _first(MAX_OUTPUT_TOKENS, model)
    return int(value) if isinstance(value, int) else 128_000


#: ``output_config.effort`` levels per model; first match wins, ``()`` = no effort parameter at all.
#: Sonnet/Opus 4.6 lack ``xhigh``: the recorded 400 (tests/fixtures/recorded/error_400_invalid_request…,
#: "Supported levels: high, low, max, medium"); Haiku/Sonnet 4.5 reject the parameter ("This model does not
#: support the effort parameter.", field reports ⚠️). Every other model is assumed to take all five levels.
EFFORT_LEVELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("claude-haiku-4-5*", ()),
    ("claude-sonnet-4-5*", ()),
    ("claude-sonnet-4-6*", ("low", "medium", "high", "max")),
    ("claude-opus-4-6*", ("low", "medium", "high", "max")),
)

#: Models that answer 400 to a conversation ending with an assistant turn (prefill): facts §0.7 and §4.
#: With structured outputs (JSON), prefill is a 400 on every model.
NO_PREFILL: tuple[str, ...] = ("claude-haiku-5-5*",)
#: Models that answer 400 to a forced ``tool_choice`` (``tool`` or ``any``): facts §0.6.
NO_FORCED_TOOL_CHOICE: tuple[str, ...] = ("claude-sonnet-5-5*",)


def effort_levels(model: str) -> tuple[str, ...]:
    """The effort levels ``model`` accepts (empty: it takes no ``output_config.effort``)."""
    for pattern, levels in EFFORT_LEVELS:
        if fnmatch.fnmatchcase(model, pattern):
            return levels
    return EFFORTS


def supports_prefill(model: str) -> bool:
    return not any(fnmatch.fnmatchcase(model, pattern) for pattern in NO_PREFILL)


def supports_forced_tool_choice(model: str) -> bool:
    return not any(fnmatch.fnmatchcase(model, pattern) for pattern in NO_FORCED_TOOL_CHOICE)


def thinks_by_default(model: str) -> bool:
    return any(fnmatch.fnmatchcase(model, pattern) for pattern in ADAPTIVE_THINKING_BY_DEFAULT)


def default_effort(model: str) -> str | None:
    """The effort the model applies when none is sent (None: the model has no effort setting we know)."""
    value = _first(DEFAULT_EFFORT, model)
    return str(value) if value is not None else None


def expected_thinking_tokens(model: str, *, effort: str | None, thinking: str | None) -> int:
    """Planning estimate of the thinking tokens of one answer (0 when the model does not think)."""
    if thinking == "disabled" or (thinking is None and not thinks_by_default(model)):
        return 0
    level = effort or default_effort(model) or "medium"
    return TYPICAL_THINKING_TOKENS.get(level, TYPICAL_THINKING_TOKENS["medium"])
