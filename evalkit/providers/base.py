"""The provider contract: one request in, one response (or a ProviderError) out.

Scoring never knows how a response was obtained (real time, batch, or cache); it only sees
:class:`ModelResponse`, which keeps the Message JSON exactly as the API returned it.
"""

from __future__ import annotations

import abc
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from evalkit.prompts.render import ModelRequest


@dataclass(frozen=True, slots=True)  # slots: one per answer, all kept until the record (issue 20)
class Usage:
    """Token counts of one call, as billed. ``input_tokens`` excludes cached-prefix tokens (API semantics)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0

    @property
    def cache_creation_input_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def total_input_tokens(self) -> int:
        """Everything the model read: uncached + cache writes + cache reads."""
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    @classmethod
    def from_wire(cls, usage: dict[str, Any] | None) -> Usage:
        usage = usage or {}
        creation = usage.get("cache_creation") or {}
        write_5m = int(creation.get("ephemeral_5m_input_tokens") or 0)
        write_1h = int(creation.get("ephemeral_1h_input_tokens") or 0)
        total_creation = int(usage.get("cache_creation_input_tokens") or 0)
        if write_5m + write_1h != total_creation:
            # Older responses carry only the total; the API's default TTL is 5 minutes.
            write_5m = total_creation - write_1h
        return cls(
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            cache_read_input_tokens=int(usage.get("cache_read_input_tokens") or 0),
            cache_write_5m_tokens=write_5m,
            cache_write_1h_tokens=write_1h,
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
            cache_write_5m_tokens=self.cache_write_5m_tokens + other.cache_write_5m_tokens,
            cache_write_1h_tokens=self.cache_write_1h_tokens + other.cache_write_1h_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_write_5m_tokens": self.cache_write_5m_tokens,
            "cache_write_1h_tokens": self.cache_write_1h_tokens,
        }


_NOTHING: Mapping[str, Any] = MappingProxyType({})


class ModelResponse:
    """A successful API response (HTTP 200), whatever its content.

    What scoring, costs and rows read (stop reason, usage…) is taken out once; the Message JSON is kept
    exactly, but as one compact JSON string, decoded again when asked for (``message``, ``text``): a
    decoded Message is ~2.5 KB of dicts and key strings, its JSON ~0.4 KB, and a run holds every answer
    until its record is built (issue 20: 100k samples in bounded memory). Immutable, like the dataclass it
    was."""

    __slots__ = ("_wire", "stop_reason", "thought", "usage", "model", "request_id", "simulated",
                 "mode", "batch_id", "extra")
    _wire: str
    stop_reason: str | None
    #: Whether the reply has a thinking block (its tokens count toward max_tokens).
    thought: bool
    usage: Usage
    model: str | None
    request_id: str | None
    simulated: bool
    mode: str  # "realtime" | "batch" | "log"
    batch_id: str | None
    #: What the provider knows about how it got the answer (e.g. the SDK's ``retries``); not cached.
    extra: Mapping[str, Any]

    def __init__(self, message: dict[str, Any], request_id: str | None = None, simulated: bool = False,
                 mode: str = "realtime", batch_id: str | None = None,
                 extra: Mapping[str, Any] | None = None) -> None:
        blocks = message.get("content") or []
        fields = {
            "_wire": json.dumps(message, ensure_ascii=False, separators=(",", ":")),
            "stop_reason": message.get("stop_reason"),
            "thought": any(block.get("type") in ("thinking", "redacted_thinking") for block in blocks),
            "usage": Usage.from_wire(message.get("usage")),
            "model": message.get("model"),
            "request_id": request_id, "simulated": simulated, "mode": mode, "batch_id": batch_id,
            "extra": extra or _NOTHING,
        }
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"ModelResponse is immutable (cannot set {name!r})")

    @property
    def text(self) -> str:
        """The concatenated text blocks; thinking and other block types are skipped. (Decoded on each
        use rather than kept: a long answer would otherwise be held twice.)"""
        blocks = self.message.get("content") or []
        return "".join(block.get("text", "") for block in blocks if block.get("type") == "text")

    @property
    def message(self) -> dict[str, Any]:
        """The Message JSON as the API returned it (a fresh copy on every access)."""
        decoded: dict[str, Any] = json.loads(self._wire)
        return decoded

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelResponse):
            return NotImplemented
        return self.to_cache() == other.to_cache()

    __hash__ = None  # type: ignore[assignment]  # mutable-looking value semantics, as the dataclass had

    def __repr__(self) -> str:
        return (f"ModelResponse(mode={self.mode!r}, model={self.model!r}, stop_reason={self.stop_reason!r}, "
                f"text={self.text[:40]!r})")

    def to_cache(self) -> dict[str, Any]:
        return {"message": self.message, "request_id": self.request_id, "simulated": self.simulated,
                "mode": self.mode, "batch_id": self.batch_id}

    @classmethod
    def from_cache(cls, value: dict[str, Any]) -> ModelResponse:
        return cls(message=value["message"], request_id=value.get("request_id"),
                   simulated=bool(value.get("simulated")), mode=value.get("mode", "realtime"),
                   batch_id=value.get("batch_id"))


@dataclass(frozen=True)
class BatchInfo:
    """The state of one submitted batch."""

    id: str
    status: str  # "in_progress" | "canceling" | "ended"
    counts: dict[str, int]
    created_at: datetime | None = None

    @property
    def ended(self) -> bool:
        return self.status == "ended"

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class BatchItemResult:
    """One line of a batch's results."""

    custom_id: str
    outcome: str  # "succeeded" | "errored" | "expired" | "canceled"
    message: dict[str, Any] | None = None
    error_type: str | None = None
    error_message: str | None = None
    request_id: str | None = None


class Provider(abc.ABC):
    """Sends Messages API requests. Implementations map their SDK's errors to ``ProviderError``.

    Batch support is optional (``supports_batch``): submit, check, fetch results, list.
    """

    #: Identity of the endpoint for cache keys: different endpoints never share cached answers.
    endpoint: str
    #: True when the endpoint is known to be evalkit's simulator.
    simulated: bool = False
    supports_batch: bool = False

    @abc.abstractmethod
    async def generate(self, request: ModelRequest) -> ModelResponse:
        """Send one request in real time, once: the caller decides about retries (a retry of a request
        that timed out may pay twice, and the caller counts it)."""

    async def count_tokens(self, request: ModelRequest) -> int:
        """Input tokens of a request, without running it (free on the Anthropic API)."""
        raise NotImplementedError

    async def submit_batch(self, items: list[tuple[str, dict[str, Any]]]) -> BatchInfo:
        """Submit ``(custom_id, params)`` pairs as one batch."""
        raise NotImplementedError

    async def get_batch(self, batch_id: str) -> BatchInfo:
        raise NotImplementedError

    async def list_batches(self, limit: int = 100) -> list[BatchInfo]:
        """The newest batches of the workspace first."""
        raise NotImplementedError

    async def cancel_batch(self, batch_id: str) -> BatchInfo:
        """Ask the API to stop a batch: items not yet processed end ``canceled`` and are not billed."""
        raise NotImplementedError

    def batch_results(self, batch_id: str) -> AsyncIterator[BatchItemResult]:
        raise NotImplementedError

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

