"""The simulated organisation's rate limits and every documented ``anthropic-ratelimit-*`` header.

Facts §5 (api/rate-limits.md): ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-
{limit,remaining,reset}`` on responses (reset in RFC 3339), the Priority Tier's
``anthropic-priority-{input,output}-tokens-{limit,remaining,reset}``, and ``retry-after`` (seconds) on a
429. Limits are token buckets that refill continuously; ``reset`` is when a bucket is full again, and the
``tokens-*`` family reports whichever of the input and output buckets is the most restrictive now. Cache
reads do not count toward the input-token limit (facts §3); input and cache writes do.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from evalkit.config import SimRateLimits
from evalkit.sim.wire import ApiError


@dataclass
class _Bucket:
    limit: float
    level: float
    at: float

    def refill(self, now: float) -> None:
        self.level = min(self.limit, self.level + (now - self.at) * self.limit / 60.0)
        self.at = now

    def seconds_until(self, level: float) -> float:
        return max(0.0, (level - self.level) * 60.0 / self.limit)


def _rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RateLimiter:
    def __init__(self, settings: SimRateLimits, clock: Callable[[], float]) -> None:
        self.settings, self._clock = settings, clock
        now = clock()
        self._buckets = {
            "requests": _Bucket(settings.requests_per_minute, settings.requests_per_minute, now),
            "input-tokens": _Bucket(settings.input_tokens_per_minute, settings.input_tokens_per_minute, now),
            "output-tokens": _Bucket(settings.output_tokens_per_minute, settings.output_tokens_per_minute,
                                     now),
        }
        self._lock = threading.Lock()

    def admit(self) -> None:
        """Take one request from the bucket, or raise the API's 429 with ``retry-after``."""
        with self._lock:
            now = self._clock()
            for bucket in self._buckets.values():
                bucket.refill(now)
            if self.settings.enforce:
                for name, bucket in self._buckets.items():
                    if bucket.level < 1 if name == "requests" else bucket.level <= 0:
                        wait = max(1, math.ceil(bucket.seconds_until(1.0)))
                        unit = "requests" if name == "requests" else name.replace("-", " ")
                        raise ApiError(429, "rate_limit_error",
                                       f"This request would exceed your organization's rate limit of "
                                       f"{int(bucket.limit):,} {unit} per minute. For details, refer to "
                                       "https://docs.claude.com/en/api/rate-limits.",
                                       headers={"retry-after": str(wait), **self._headers(now)})
            self._buckets["requests"].level -= 1

    def record(self, *, input_tokens: int, output_tokens: int) -> None:
        """Charge what a finished request used (uncached input + cache writes; output)."""
        with self._lock:
            now = self._clock()
            for bucket in self._buckets.values():
                bucket.refill(now)
            self._buckets["input-tokens"].level -= input_tokens
            self._buckets["output-tokens"].level -= output_tokens

    def headers(self) -> dict[str, str]:
        with self._lock:
            now = self._clock()
            for bucket in self._buckets.values():
                bucket.refill(now)
            return self._headers(now)

    def _headers(self, now: float) -> dict[str, str]:
        headers: dict[str, str] = {}

        def family(name: str, bucket: _Bucket, prefix: str = "anthropic-ratelimit") -> None:
            headers[f"{prefix}-{name}-limit"] = str(int(bucket.limit))
            headers[f"{prefix}-{name}-remaining"] = str(max(0, math.floor(bucket.level)))
            headers[f"{prefix}-{name}-reset"] = _rfc3339(now + bucket.seconds_until(bucket.limit))

        for name, bucket in self._buckets.items():
            family(name, bucket)
        inputs, outputs = self._buckets["input-tokens"], self._buckets["output-tokens"]
        tightest = min((inputs, outputs), key=lambda b: b.level / b.limit)
        family("tokens", tightest)
        if self.settings.priority_tier:
            family("input-tokens", inputs, "anthropic-priority")
            family("output-tokens", outputs, "anthropic-priority")
        return headers
