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
