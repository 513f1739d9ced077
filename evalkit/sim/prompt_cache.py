"""The simulated prompt cache: exact-prefix entries per model, written at breakpoints, with TTLs.

Faithful to the documented rules (anthropic-facts §3): the prefix runs tools → system → messages;
entries are written only at ``cache_control`` breakpoints whose prefix reaches the model's minimum
length; a read refreshes the entry's TTL (5 min default, or 1 h); a new entry becomes readable only
once the response that wrote it has begun, so requests sent in parallel with it all miss; usage
reports ``input_tokens`` after the last breakpoint, plus cache creation (split 5 m / 1 h) and reads.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from evalkit._hashing import digest
from evalkit.modelinfo import min_cacheable_tokens
from evalkit.sim.tokens import REQUEST_OVERHEAD, output_format, prefix_blocks, schema_tokens

TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
UNCACHED_TAIL_TOKENS = 3


@dataclass
class _Entry:
    expires_at: float
    readable_from: float
    ttl: str


@dataclass(frozen=True)
class CacheUsage:
    input_tokens: int
    cache_read_input_tokens: int
    cache_write_5m: int
    cache_write_1h: int


def _clean(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "cache_control"}


class PromptCache:
    def __init__(self, clock: Any = time.monotonic) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def apply(self, model: str, body: dict[str, Any], total_input: int, *, arrived_at: float,
              begins_at: float, hit_allowed: bool = True) -> CacheUsage:
        """Reads and writes the cache for one request; returns its usage split.

        ``hit_allowed=False`` is a best-effort miss (inside a batch the request ran where the entry was not
        readable): it reads nothing and writes its prefix again, as any miss does."""
        blocks = prefix_blocks(body)
        automatic = body.get("cache_control")
        breakpoints: list[tuple[int, str]] = []  # (block index, ttl)
        for index, (block, _) in enumerate(blocks):
            control = block.get("cache_control")
            if isinstance(control, dict):
                breakpoints.append((index, control.get("ttl", "5m")))
        if isinstance(automatic, dict) and blocks:
            last = len(blocks) - 1
            if all(index != last for index, _ in breakpoints):
                breakpoints.append((last, automatic.get("ttl", "5m")))
        if not breakpoints:
            return CacheUsage(total_input, 0, 0, 0)
        minimum, _ = min_cacheable_tokens(model)
        # Cumulative prefix tokens and hashes at each breakpoint. Output format and thinking settings are
        # part of what the prefix means, so they are part of its identity.
        # The last few tokens of every prompt (the assistant-turn marker) are never cached: the real API
        # reports input_tokens == 3 for a fully cached prompt (recorded/messages_cache_read_*.json).
        head = REQUEST_OVERHEAD - UNCACHED_TAIL_TOKENS + schema_tokens(body)
        context = {"model": model, "format": output_format(body) or None,
                   "thinking": body.get("thinking")}
        cumulative, points = head, []
        prefix: list[dict[str, Any]] = []
        positions = {index: ttl for index, ttl in breakpoints}
        for index, (block, tokens) in enumerate(blocks):
            cumulative += tokens
            prefix.append(_clean(block))
            if index in positions:
                points.append((digest([context, prefix]), cumulative, positions[index]))
        now = self._clock()
        with self._lock:
            hit_tokens, hit_at = 0, -1
            for position in range(len(points) - 1, -1, -1):
                key, tokens, ttl = points[position]
                entry = self._entries.get(key)
                if (hit_allowed and tokens >= minimum and entry and entry.expires_at > now
                        and entry.readable_from <= arrived_at):
                    entry.expires_at = now + TTL_SECONDS[entry.ttl]  # a hit refreshes the TTL
                    hit_tokens, hit_at = tokens, position
                    break
            written = {"5m": 0, "1h": 0}
            covered = hit_tokens
            for key, tokens, ttl in points[hit_at + 1:]:
                if tokens < minimum:
                    continue
                written[ttl if ttl in written else "5m"] += tokens - covered
                covered = tokens
                existing = self._entries.get(key)
                if existing is None or existing.expires_at <= now:
                    self._entries[key] = _Entry(expires_at=now + TTL_SECONDS.get(ttl, 300.0),
                                                readable_from=begins_at,
                                                ttl=ttl if ttl in TTL_SECONDS else "5m")
        return CacheUsage(input_tokens=max(total_input - covered, 0), cache_read_input_tokens=hit_tokens,
                          cache_write_5m=written["5m"], cache_write_1h=written["1h"])
