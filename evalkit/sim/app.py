"""An offline Anthropic Messages API: a Starlette app speaking the real wire format.

The official ``anthropic`` SDK talks to it unchanged, over HTTP (``evalkit sim serve``) or in-process
through an ASGI transport. It validates requests the way API version 2026-10-21 does (unknown keys and
the removed sampling parameters are 400s, unknown models 404), answers with :mod:`evalkit.sim.brain`,
and bills every successful request to a ledger (``billing.jsonl``) so tests can count exactly what a
run would have paid for. Every response carries the ``x-evalkit-simulator`` header.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import json
import math
import os
import random
import secrets
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from evalkit._hashing import digest
from evalkit.config import SimulatorSettings
from evalkit.modelinfo import TYPICAL_THINKING_TOKENS, default_effort, thinks_by_default
from evalkit.sim import SIMULATOR_VERSION, catalog, check_corpora, simulator_fingerprint
from evalkit.sim.brain import Brain, compose_answer, system_text, user_text
from evalkit.sim.clock import SimClock
from evalkit.sim.conform import conform
from evalkit.sim.platforms import platform_routes
from evalkit.sim.prompt_cache import PromptCache
from evalkit.sim.ratelimit import RateLimiter
from evalkit.sim.tokens import count_tokens, request_input_tokens
from evalkit.sim.validate import CURRENT_VERSION, Context, parse_betas, validate_message_body
from evalkit.sim.wire import ApiError, api_id, invalid
from evalkit.wire import SIMULATOR_HEADER

API_VERSIONS = ("2023-06-01", "2026-10-21")
#: What a simulated refusal says (stop_reason "refusal": HTTP 200, billed, not the requested JSON).
REFUSAL_TEXT = "I can't help with this request."


@dataclass
class Ledger:
    """What the simulated API billed: one JSON line per successful (billable) request."""

    path: Path | None
    counts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def bill(self, *, request_id: str, model: str, mode: str, usage: dict[str, Any], body: dict[str, Any],
             batch_id: str | None = None, custom_id: str | None = None, path: str | None = None) -> None:
        """``path``: the URL path the request came in on (the Claude API's, or a platform's)."""
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "request_id": request_id, "model": model, "mode": mode, "batch_id": batch_id,
            "custom_id": custom_id, "usage": usage, "body_sha256": digest(body), "path": path,
        }
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self._lock:
            self.counts[f"{mode}:{model}"] += 1
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # One write() of one line in append mode: lines from concurrent writers never interleave.
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, line.encode())
                finally:
                    os.close(fd)

    @staticmethod
    def read(path: Path) -> list[dict[str, Any]]:
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class SimulatorState:
    """Everything the simulated API knows: settings, models, ledger."""

    def __init__(self, settings: SimulatorSettings, *, root: Path, state_dir: Path | None) -> None:
        self.settings = settings
        self.root = root
        check_corpora(settings, root)
        self.state_dir = state_dir
        self.ledger = Ledger(state_dir / "billing.jsonl" if state_dir else None)
        from evalkit.sim.batches import BatchStore  # noqa: PLC0415 - circular: the store answers through us

        batch_dir = (state_dir / "batches" if state_dir
                     else Path(tempfile.mkdtemp(prefix="evalkit-sim-batches-")))
        self.clock = SimClock()
        self.prompt_cache = PromptCache(clock=self.clock.time)
        self.rate_limiter = RateLimiter(settings.rate_limits, self.clock.time)
        self.batches = BatchStore(self, batch_dir)
        self._answered_lock = threading.Lock()
        self._fault_rng = random.Random(f"faults/{settings.seed}/{time.time_ns()}")
        self.fault_counts: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests served at once: checks the client's concurrency limit
        self._brain: Brain | None = None
        self._brain_lock = threading.Lock()
        self.started = time.time()
        self.batches.resume()  # last: a batch that came due while no simulator ran is processed now

    def warm_up(self) -> None:
        """Train every corpus's classifiers for the tiers in use (otherwise done on first use)."""
        tiers = set(self.settings.tiers.values())
        for corpus in self.brain.corpora:
            for tier in tiers:
                corpus.model(tier)

    async def inject_fault(self, endpoint: str = "messages") -> None:
        """Fail this request the way the configured faults say (before any work: nothing is billed).
        ``endpoint`` names the operation; faults apply where ``[simulator.faults] endpoints`` says."""
        faults = self.settings.faults
        if not faults.any or not faults.applies_to(endpoint):
            return
        with self._answered_lock:
            draw = self._fault_rng.random()
        edges = [(faults.rate_limit, "rate_limit"), (faults.overloaded, "overloaded"),
                 (faults.server_error, "server_error"), (faults.disconnect, "disconnect"),
                 (faults.slow, "slow")]
        for share, kind in edges:
            if draw < share:
                self.fault_counts[kind] += 1
                if kind == "rate_limit":
                    raise ApiError(429, "rate_limit_error",
                                   "Number of request tokens has exceeded your per-minute rate limit",
                                   headers={"retry-after": f"{faults.retry_after_s:g}",
                                            "retry-after-ms": f"{1000 * faults.retry_after_s:g}"})
                if kind == "overloaded":
                    raise ApiError(529, "overloaded_error", "Overloaded")
                if kind == "server_error":
                    raise ApiError(500, "api_error", "Internal server error")
                if kind == "disconnect":
                    # In process the SDK sees a transport error; over a socket the server answers 500.
                    import httpx2  # noqa: PLC0415

                    raise httpx2.RemoteProtocolError("Server disconnected without sending a response.")
                await asyncio.sleep(faults.slow_ms / 1000)
                return
            draw -= share

    def lost_after_work(self, share: float, kind: str) -> None:
        """With probability ``share``: the work is done (a batch created, a message billed), and then the
        answer is lost on the way back, as when a gateway times out: 504."""
        if not share:
            return
        with self._answered_lock:
            draw = self._fault_rng.random()
        if draw < share:
            self.fault_counts[kind] += 1
            raise ApiError(504, "timeout_error",
                           "Gateway timeout: the upstream server did not answer in time")

    @property
    def brain(self) -> Brain:
        with self._brain_lock:
            if self._brain is None:
                self._brain = Brain.from_settings(self.settings.corpora, self.root, self.settings.seed)
            return self._brain

    def fingerprint(self) -> str:
        """Identity of this simulator's behaviour: same fingerprint, same answers (for cache keys)."""
        return simulator_fingerprint(self.settings, self.root)

    # -- messages ---------------------------------------------------------------------------------
    def validate_message_body(self, body: Any, context: Context | None = None) -> str:
        """Checks a Messages body (see :mod:`evalkit.sim.validate`); returns the resolved model id or raises
        :class:`ApiError`."""
        return validate_message_body(body, context or Context(), self.settings.tier_for)

    def create_message(self, body: dict[str, Any], *, mode: str = "realtime", batch_id: str | None = None,
                       custom_id: str | None = None, bill: bool = True, arrived_at: float | None = None,
                       begins_at: float | None = None, cache_hit_allowed: bool = True,
                       path: str | None = None) -> dict[str, Any]:
        """Answers a validated Messages body and (unless ``bill=False``) bills it. Returns the Message JSON
        with the request id under ``_request_id``.

        A structured answer conforms to the request's schema (grammar-constrained, as on the API); a
        refusal (``refusal_rate``) and a ``max_tokens`` cut are the two ways it does not."""
        model = body["model"]
        resolved = catalog.resolve(model) or model
        tier = self.settings.tier_for(model) or "small"
        # Identical requests get identical draws (so a retried or re-sent request cannot change a result);
        # a caller that wants an independent sample says so in metadata.user_id, as evalkit's replicates do.
        user_id = str((body.get("metadata") or {}).get("user_id") or "")
        occurrence = int(hashlib.sha256(user_id.encode()).hexdigest()[:8], 16) if user_id else 0
        answer, thinking_text = compose_answer(self.brain, body, model=resolved, tier=tier,
                                               occurrence=occurrence)
        refused = self._refuses(body, resolved, occurrence)
        schema = Brain.schema_of(body)
        if refused:
            answer = REFUSAL_TEXT
        elif schema is not None:
            answer = _conformed(answer, schema)
        thinking_tokens = _thinking_tokens(body, resolved, occurrence)
        budget = int(body["max_tokens"])
        content: list[dict[str, Any]] = []
        used = 0
        stop_reason = "end_turn"
        if thinking_tokens and budget > 0:
            # Thinking tokens are output tokens and count toward max_tokens: a long thought can leave no
            # room for the answer, which then ends with stop_reason "max_tokens".
            thinking_used = min(thinking_tokens, budget)
            display = (body.get("thinking") or {}).get("display")
            omitted = display == "omitted" or (display is None and _omits_thinking_text(resolved))
            shown = "" if omitted else _thinking_text(thinking_text, thinking_used)
            content.append({"type": "thinking", "thinking": shown,
                            "signature": hashlib.sha256(f"{thinking_text}/{thinking_used}".encode())
                            .hexdigest()})
            used += thinking_used
            if thinking_used >= budget:
                stop_reason = "max_tokens"
        remaining = budget - used
        if refused and stop_reason != "max_tokens":
            stop_reason = "refusal"
        answer_tokens = count_tokens(answer)
        if answer_tokens > remaining:
            answer = _truncate_tokens(answer, max(remaining, 0))
            answer_tokens = max(remaining, 0)
            stop_reason = "max_tokens"
        if answer:
            content.append({"type": "text", "text": answer})
        used += answer_tokens
        now = self.clock.time()
        cached = self.prompt_cache.apply(resolved, body, request_input_tokens(body),
                                         arrived_at=arrived_at if arrived_at is not None else now,
                                         begins_at=begins_at if begins_at is not None else now,
                                         hit_allowed=cache_hit_allowed)
        usage = {
            "cache_creation": {"ephemeral_1h_input_tokens": cached.cache_write_1h,
                               "ephemeral_5m_input_tokens": cached.cache_write_5m},
            "cache_creation_input_tokens": cached.cache_write_1h + cached.cache_write_5m,
            "cache_read_input_tokens": cached.cache_read_input_tokens,
            "inference_geo": "not_available",
            "input_tokens": cached.input_tokens,
            "output_tokens": used,
            "service_tier": "batch" if mode == "batch" else "standard",
        }
        message = {
            "id": api_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": resolved,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "stop_details": ({"type": "refusal", "category": None, "explanation": None}
                             if stop_reason == "refusal" else None),
            "container": None,
            "diagnostics": None,
            "usage": usage,
        }
        request_id = api_id("req_")
        if bill:
            self.ledger.bill(request_id=request_id, model=resolved, mode=mode, usage=usage, body=body,
                             batch_id=batch_id, custom_id=custom_id, path=path)
        message["_request_id"] = request_id
        return message

    def _refuses(self, body: dict[str, Any], model: str, occurrence: int) -> bool:
        """Whether the simulated model refuses this request: a draw from the request's own content (the same
        request is refused again, as a policy decision would be)."""
        rate = self.settings.refusal_rate
        if rate <= 0:
            return False
        material = json.dumps(["refusal", self.settings.seed, model, system_text(body), user_text(body),
                               occurrence])
        draw = int(hashlib.sha256(material.encode()).hexdigest()[:12], 16) / 16**12
        return draw < rate


def _conformed(answer: str, schema: dict[str, Any]) -> str:
    """The answer as the schema's grammar would have let the model write it (:mod:`evalkit.sim.conform`)."""
    try:
        parsed = json.loads(answer)
    except ValueError:
        return answer
    fixed = conform(parsed, schema)
    text = json.dumps(fixed, ensure_ascii=False)
    return answer if text == json.dumps(parsed, ensure_ascii=False) else text


def _sse_events(message: dict[str, Any]) -> Iterator[str]:
    """The Message as the API's server-sent events (shape of recorded/messages_stream_*.sse_events.json):
    message_start, per block start/delta/stop, message_delta with the final usage, message_stop."""

    def event(data: dict[str, Any]) -> str:
        return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n"

    usage = message["usage"]
    start_usage = {**usage, "output_tokens": 1}
    yield event({"type": "message_start", "message": {**message, "content": [], "stop_reason": None,
                                                      "usage": start_usage}})
    yield event({"type": "ping"})
    for index, block in enumerate(message["content"]):
        if block["type"] == "thinking":
            yield event({"type": "content_block_start", "index": index,
                         "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
            yield event({"type": "content_block_delta", "index": index,
                         "delta": {"type": "thinking_delta", "thinking": block["thinking"]}})
            yield event({"type": "content_block_delta", "index": index,
                         "delta": {"type": "signature_delta", "signature": block["signature"]}})
        else:
            yield event({"type": "content_block_start", "index": index,
                         "content_block": {"type": "text", "text": ""}})
            text = block["text"]
            for piece in range(0, len(text), 40):
                yield event({"type": "content_block_delta", "index": index,
                             "delta": {"type": "text_delta", "text": text[piece:piece + 40]}})
        yield event({"type": "content_block_stop", "index": index})
    yield event({"type": "message_delta",
                 "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None,
                           "stop_details": message["stop_details"],
                           "container": None},
                 "usage": {k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens",
                                                 "cache_read_input_tokens", "output_tokens")}})
    yield event({"type": "message_stop"})


def _thinking_tokens(body: dict[str, Any], model: str, occurrence: int) -> int:
    """How long the simulated model thinks: the effort level's typical length (a planning assumption of
    :mod:`evalkit.modelinfo`), spread per request as a log-normal draw seeded by the request's content —
    never by ``max_tokens``, so raising the budget does not change the thought. 0 when it does not think."""
    thinking = body.get("thinking") or {}
    kind = thinking.get("type")
    if kind == "disabled" or (kind is None and not thinks_by_default(model)):
        return 0
    effort = (body.get("output_config") or {}).get("effort") or default_effort(model) or "medium"
    typical = TYPICAL_THINKING_TOKENS.get(str(effort), TYPICAL_THINKING_TOKENS["medium"])
    if kind == "enabled" and isinstance(thinking.get("budget_tokens"), int):
        typical = min(typical, int(thinking["budget_tokens"]))
    # The request's words, not its cache_control markers: batch (1 h) and real time (5 m) think alike.
    material = json.dumps([model, system_text(body), user_text(body), effort, occurrence])
    rng = random.Random(hashlib.sha256(material.encode()).hexdigest())
    spread = math.exp(rng.gauss(0.0, 0.6) - 0.18)  # mean 1: the typical length on average
    return max(10, min(int(typical * spread), 20 * typical))


def _omits_thinking_text(model: str) -> bool:
    """The 5.5 models return the thinking block with a signature only, unless asked to show it."""
    return fnmatch.fnmatchcase(model, "claude-*-5-5*")


def _thinking_text(base: str, tokens: int) -> str:
    """Thinking text of about ``tokens`` tokens, built from the model's own reasoning sentence."""
    sentence = base.strip() or "Considering the request."
    text = sentence
    while count_tokens(text) < tokens:
        text = f"{text} {sentence}"
    return _truncate_tokens(text, tokens)


def _truncate_tokens(text: str, tokens: int) -> str:
    """The longest prefix of ``text`` that counts as at most ``tokens`` tokens."""
    if tokens <= 0:
        return ""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if count_tokens(text[:middle]) <= tokens:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def _headers(request_id: str, rate_limits: dict[str, str] | None = None) -> dict[str, str]:
    """Headers of every response. Messages responses carry the rate limiter's full header families; the
    batch endpoints (which have their own, separate limits) the request family only."""
    reset = (datetime.now(UTC) + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "request-id": request_id,
        SIMULATOR_HEADER: SIMULATOR_VERSION,
        "anthropic-organization-id": "00000000-0000-4000-8000-000000000000",
        **(rate_limits if rate_limits is not None else {
            "anthropic-ratelimit-requests-limit": "4000",
            "anthropic-ratelimit-requests-remaining": "3999",
            "anthropic-ratelimit-requests-reset": reset,
        }),
    }


def _error_response(error: ApiError, rate_limits: dict[str, str] | None = None) -> JSONResponse:
    request_id = api_id("req_")
    body = {"type": "error", "error": {"type": error.error_type, "message": error.message},
            "request_id": request_id}
    return JSONResponse(body, status_code=error.status,
                        headers={**_headers(request_id, rate_limits), **error.headers})


def _betas(request: Request) -> frozenset[str]:
    return parse_betas(request.headers.get("anthropic-beta"))


def _context(request: Request, *, count_tokens: bool = False) -> Context:
    """What a body is validated against: the beta headers and the API version (checked before)."""
    return Context(betas=_betas(request), count_tokens=count_tokens,
                   api_version=request.headers.get("anthropic-version") or CURRENT_VERSION)


def _check_headers(request: Request, expected_key: str | None = None) -> None:
    key = request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    if not key and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    if not key:
        raise ApiError(401, "authentication_error", "x-api-key header is required")
    if expected_key is not None and not secrets.compare_digest(key, expected_key):
        raise ApiError(401, "authentication_error", "invalid x-api-key")
    version = request.headers.get("anthropic-version")
    if not version:
        raise invalid("anthropic-version: header is required")
    if version not in API_VERSIONS:
        raise invalid(f"anthropic-version: unsupported version '{version}'")


async def _json_body(request: Request, limit: int = 32 * 1024 * 1024) -> tuple[Any, int]:
    raw = await request.body()
    if len(raw) > limit:
        raise ApiError(413, "request_too_large", "Request exceeds the maximum allowed number of bytes.")
    try:
        return json.loads(raw), len(raw)
    except ValueError:
        raise invalid("There was an error parsing the body as JSON") from None


def _guarded(handler: Any) -> Any:
    """A bug in the simulator answers 500 api_error, as a real server would, instead of killing the
    connection (in process, an exception would surface as a transport error)."""

    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as error:
            return _error_response(error)
        except Exception as exc:  # noqa: BLE001 - the server boundary
            if type(exc).__module__.startswith("httpx"):
                raise  # deliberate dropped connections (fault injection)
            return _error_response(ApiError(500, "api_error",
                                            f"simulator error: {type(exc).__name__}: {exc}"))

    return wrapper


async def answer_message(state: SimulatorState, body: Any, context: Context, arrived_at: float,
                         path: str = "/v1/messages") -> dict[str, Any]:
    """One Messages request, validated, rate-limited, fault-injected, answered and billed: the same for the
    Claude API route and the cloud platforms' routes (:mod:`evalkit.sim.platforms`). Raises ApiError."""
    state.validate_message_body(body, context)
    state.rate_limiter.admit()
    state.in_flight += 1
    state.max_in_flight = max(state.max_in_flight, state.in_flight)
    try:
        await state.inject_fault()
        if state.settings.latency_ms:
            await asyncio.sleep(state.settings.latency_ms / 1000)
        message = await asyncio.to_thread(state.create_message, body, arrived_at=arrived_at, path=path)
    finally:
        state.in_flight -= 1
    state.lost_after_work(state.settings.faults.after_answer, "after_answer")
    usage = message["usage"]
    state.rate_limiter.record(input_tokens=usage["input_tokens"] + usage["cache_creation_input_tokens"],
                              output_tokens=usage["output_tokens"])
    return message


def create_app(state: SimulatorState) -> Starlette:
    """The ASGI app for one simulator state."""

    async def messages(request: Request) -> Response:
        try:
            _check_headers(request, state.settings.api_key)
            arrived_at = state.clock.time()
            body, _ = await _json_body(request)
            message = await answer_message(state, body, _context(request), arrived_at)
        except ApiError as error:
            return _error_response(error, state.rate_limiter.headers())
        request_id = message.pop("_request_id")
        headers = _headers(request_id, state.rate_limiter.headers())
        if body.get("stream"):
            return StreamingResponse(_sse_events(message), media_type="text/event-stream", headers=headers)
        return JSONResponse(message, headers=headers)

    async def count_tokens_endpoint(request: Request) -> Response:
        try:
            _check_headers(request, state.settings.api_key)
            body, _ = await _json_body(request)
            state.validate_message_body(body, _context(request, count_tokens=True))
            await state.inject_fault("count_tokens")
        except ApiError as error:
            return _error_response(error)
        return JSONResponse({"input_tokens": request_input_tokens(body)}, headers=_headers(api_id("req_")))

    async def stats(request: Request) -> Response:
        return JSONResponse({
            "simulator": SIMULATOR_VERSION,
            "fingerprint": state.fingerprint(),
            "billed": dict(state.ledger.counts),
            "billed_total": sum(state.ledger.counts.values()),
            "faults_injected": dict(state.fault_counts),
            "max_in_flight": state.max_in_flight,
        }, headers={SIMULATOR_HEADER: SIMULATOR_VERSION})

    async def advance_clock(request: Request) -> Response:
        """Moves the simulator's clock forward (``{"seconds": 3600}``): batches come due, cache entries
        expire, rate-limit buckets refill — an hour of simulated time at once."""
        body, _ = await _json_body(request)
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise invalid("seconds: Input should be a number greater than or equal to 0")
        state.clock.advance(float(seconds))
        await asyncio.to_thread(state.batches.process_due)
        return JSONResponse({"now": state.clock.now().isoformat()},
                            headers={SIMULATOR_HEADER: SIMULATOR_VERSION})

    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    async def batch_create(request: Request) -> Response:
        try:
            _check_headers(request, state.settings.api_key)
            body, size = await _json_body(request, limit=2**31)
            await state.inject_fault("batch_create")
            meta = state.batches.create(body, size, api_id("msgbatch_"), betas=sorted(_betas(request)),
                                        api_version=_context(request).api_version)
            state.lost_after_work(state.settings.faults.after_create, "after_create")
        except ApiError as error:
            return _error_response(error)
        return JSONResponse(state.batches.public(meta, base_url(request)), headers=_headers(api_id("req_")))

    async def batch_list(request: Request) -> Response:
        try:
            _check_headers(request, state.settings.api_key)
            try:
                limit = int(request.query_params.get("limit", "20"))
            except ValueError:
                raise invalid("limit: Input should be a valid integer") from None
            if not 1 <= limit <= 1000:
                raise invalid("limit: Input should be between 1 and 1000")
            await state.inject_fault("batch_list")
            page = await asyncio.to_thread(
                state.batches.list, limit=limit, after_id=request.query_params.get("after_id"),
                before_id=request.query_params.get("before_id"), base_url=base_url(request))
        except ApiError as error:
            return _error_response(error)
        return JSONResponse(page, headers=_headers(api_id("req_")))

    async def batch_retrieve(request: Request) -> Response:
        try:
            _check_headers(request, state.settings.api_key)
            await state.inject_fault("batch_retrieve")
            meta = await asyncio.to_thread(state.batches.retrieve, request.path_params["batch_id"],
                                           base_url(request))
        except ApiError as error:
            return _error_response(error)
        return JSONResponse(meta, headers=_headers(api_id("req_")))

    async def batch_cancel(request: Request) -> Response:
        try:
            _check_headers(request, state.settings.api_key)
            await state.inject_fault("batch_cancel")
            meta = await asyncio.to_thread(state.batches.cancel, request.path_params["batch_id"],
                                           base_url(request))
        except ApiError as error:
            return _error_response(error)
        return JSONResponse(meta, headers=_headers(api_id("req_")))

    async def batch_delete(request: Request) -> Response:
        try:
            _check_headers(request, state.settings.api_key)
            deleted = state.batches.delete(request.path_params["batch_id"])
        except ApiError as error:
            return _error_response(error)
        return JSONResponse(deleted, headers=_headers(api_id("req_")))

    async def batch_results(request: Request) -> Response:
        try:
            _check_headers(request, state.settings.api_key)
            await state.inject_fault("batch_results")
            content = await asyncio.to_thread(state.batches.results, request.path_params["batch_id"])
        except ApiError as error:
            return _error_response(error)
        return Response(content, media_type="application/binary", headers=_headers(api_id("req_")))

    return Starlette(routes=[
        Route("/v1/messages", _guarded(messages), methods=["POST"]),
        Route("/v1/messages/count_tokens", _guarded(count_tokens_endpoint), methods=["POST"]),
        Route("/v1/messages/batches", _guarded(batch_create), methods=["POST"]),
        Route("/v1/messages/batches", _guarded(batch_list), methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}", _guarded(batch_retrieve), methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}", _guarded(batch_delete), methods=["DELETE"]),
        Route("/v1/messages/batches/{batch_id}/cancel", _guarded(batch_cancel), methods=["POST"]),
        Route("/v1/messages/batches/{batch_id}/results", _guarded(batch_results), methods=["GET"]),
        *platform_routes(state, answer=answer_message, json_body=_json_body, clock=state.clock.time,
                         headers=lambda request_id: _headers(request_id, state.rate_limiter.headers()),
                         guard=_guarded),
        Route("/_simulator/stats", stats, methods=["GET"]),
        Route("/_simulator/clock", _guarded(advance_clock), methods=["POST"]),
    ])
