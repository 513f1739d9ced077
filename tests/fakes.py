"""An in-process fake of evalkit's :class:`~evalkit.providers.base.Provider`, for the fast test tier.

It sits at evalkit's own provider interface (never inside the ``anthropic`` SDK), so the code under test
(execution, batching, sessions, runs) is exactly the code a real run uses; only the far side of the
interface is scripted. Everything it receives is recorded, so tests can assert what would have been sent
and paid for:

* ``history``: every request received, in arrival order (real time, batch items, token counts);
* ``billed``: the requests that produced an answer (what the API would charge for);
* ``batches``: every batch created, with its items, status and per-item results;
* ``in_flight`` / ``max_in_flight`` / ``events``: how calls overlapped in time.

Answers come from ``answer(received) -> message dict | exception`` (default: a valid Messages API message
for the request's JSON schema, e.g. the first enum label with confidence 0.9). Faults are scheduled per
operation with :meth:`FakeProvider.fail` (in real time also "billed, then the answer was lost"). A batch
stays ``in_progress`` for ``batch_polls`` status checks (an int, or one per batch in creation order), then
ends; its items' outcomes come from ``outcome(received)``. ``list_lag`` makes the batch list eventually
consistent; ``cancel_batch`` ends a batch with every item canceled.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

from evalkit._hashing import digest
from evalkit.backends import Backend
from evalkit.errors import ProviderError
from evalkit.prompts.render import ModelRequest
from evalkit.providers.base import BatchInfo, BatchItemResult, ModelResponse, Provider

Mode = Literal["realtime", "batch", "count_tokens"]
#: Provider operations a fault can be scheduled on. ``submit`` fails before the batch is created (the
#: create never reached the API); ``submitted`` after it was created (the reply was lost on the way back).
Operation = Literal["realtime", "count_tokens", "submit", "submitted", "poll", "results", "list", "cancel"]
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_BATCH_REQUESTS = 100_000


@dataclass
class Received:
    """One request as the fake API received it."""

    index: int  # arrival order over every mode, from 0
    mode: Mode
    params: dict[str, Any]
    request: ModelRequest | None = None  # real time and token counts: the request as evalkit built it
    custom_id: str | None = None  # batch items
    batch_id: str | None = None
    #: How many times the same body (params and replicate) arrived before, in any answering mode: lets a
    #: script fail an item on its first submission and answer it on the next.
    occurrence: int = 0

    @property
    def model(self) -> str:
        return str(self.params.get("model"))

    @property
    def system(self) -> str:
        system = self.params.get("system") or ""
        return system if isinstance(system, str) else "".join(block.get("text", "") for block in system)

    @property
    def user_text(self) -> str:
        """The text of the last user turn (what a script usually keys its answer on)."""
        for message in reversed(self.params.get("messages") or []):
            if message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, str):
                    return content
                return "".join(block.get("text", "") for block in content if block.get("type") == "text")
        return ""


@dataclass(frozen=True)
class Outcome:
    """How one batch item ends."""

    kind: Literal["succeeded", "errored", "expired", "canceled"]
    error_type: str | None = None


SUCCEEDED = Outcome("succeeded")
EXPIRED = Outcome("expired")
CANCELED = Outcome("canceled")


def errored(error_type: str = "api_error") -> Outcome:
    return Outcome("errored", error_type)


@dataclass
class FakeBatch:
    id: str
    created_at: datetime
    items: list[Received]
    polls_left: int
    status: str = "in_progress"
    results: list[BatchItemResult] = field(default_factory=list)
    hidden_lists: int = 0  # list calls that do not show it yet (an eventually consistent list)
    cancel_requested: bool = False

    def info(self) -> BatchInfo:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if self.status == "ended":
            for result in self.results:
                counts[result.outcome] += 1
        else:
            counts["processing"] = len(self.items)
        return BatchInfo(id=self.id, status=self.status, counts=counts, created_at=self.created_at)


@dataclass
class _Fault:
    error: BaseException
    on: Operation
    call: int | None
    when: Callable[[Received], bool] | None
    times: int | None
    billed: bool = False  # real time: the request was answered and billed; only the answer was lost
    server_s: float = 0.0  # ... and the server kept working on it this long after the client gave up

    def fires(self, number: int, received: Received | None) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.call is not None and number != self.call:
            return False
        if self.when is not None and (received is None or not self.when(received)):
            return False
        return True


# -- answers ----------------------------------------------------------------------------------------------
def schema_of(params: dict[str, Any]) -> dict[str, Any] | None:
    fmt = (params.get("output_config") or {}).get("format") or {}
    schema = fmt.get("schema") if fmt.get("type") == "json_schema" else None
    return schema if isinstance(schema, dict) else None


def fill(schema: dict[str, Any]) -> Any:
    """A value that validates against ``schema``: the first enum value, 0.9 for numbers, and so on."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {key: fill(prop) for key, prop in (schema.get("properties") or {}).items()}
    return {"number": 0.9, "integer": 1, "boolean": False, "string": "fake", "array": [], "null": None}.get(
        str(kind), None)


def message(params: dict[str, Any], text: str, *, stop_reason: str = "end_turn", mode: Mode = "realtime",
            output_tokens: int | None = None) -> dict[str, Any]:
    """A Messages API message for ``params`` whose one text block is ``text``."""
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": params.get("model"),
        "content": [{"type": "text", "text": text}] if text else [],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": estimate_tokens(params),
            "output_tokens": output_tokens if output_tokens is not None else max(1, len(text) // 4),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "service_tier": "batch" if mode == "batch" else "standard",
        },
    }


def json_message(received: Received, **fields: Any) -> dict[str, Any]:
    """The default structured answer for the request's schema, with ``fields`` overriding its values."""
    schema = schema_of(received.params)
    answer = fill(schema) if schema is not None else {}
    answer.update(fields)
    return message(received.params, json.dumps(answer), mode=received.mode)


def default_answer(received: Received) -> dict[str, Any]:
    """Valid for any task: a schema-conforming JSON object, or for free text the user turn's first words."""
    if schema_of(received.params) is not None:
        return json_message(received)
    words = received.user_text.split()[:12]
    return message(received.params, " ".join(words) or "fake answer", mode=received.mode)


def estimate_tokens(params: dict[str, Any]) -> int:
    return 1 + len(json.dumps([params.get("system"), params.get("messages")], default=str)) // 4


# -- the provider -----------------------------------------------------------------------------------------
class FakeProvider(Provider):
    """A scripted, recording provider with real time, token counting and Message Batches."""

    supports_batch = True

    def __init__(
        self,
        answer: Callable[[Received], dict[str, Any] | BaseException] = default_answer,
        *,
        outcome: Callable[[Received], Outcome] = lambda received: SUCCEEDED,
        batch_polls: int | list[int] = 0,
        latency_s: float = 0.0,
        endpoint: str = "fake:provider",
        simulated: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_submit: Callable[[list[tuple[str, dict[str, Any]]]], None] | None = None,
        list_lag: int = 0,
        timeout_s: float = 0.0,
    ) -> None:
        self.answer, self.outcome = answer, outcome
        self.batch_polls, self.latency_s = batch_polls, latency_s
        self.endpoint, self.simulated, self.clock = endpoint, simulated, clock
        self.on_submit = on_submit  # called inside submit_batch before the batch exists (inspect state here)
        self.list_lag = list_lag  # a new batch shows in list_batches only after this many list calls
        self.timeout_s = timeout_s
        self.history: list[Received] = []
        self.billed: list[Received] = []
        self.batches: dict[str, FakeBatch] = {}
        self.calls: dict[Operation, int] = {}  # operation -> how many times it was called
        self.in_flight = 0
        self.max_in_flight = 0
        self.events: list[tuple[str, int]] = []  # ("start" | "end", Received.index) of real-time calls
        self.closed = False
        self._faults: list[_Fault] = []
        self._seen: dict[str, int] = {}

    # -- scripting --------------------------------------------------------------------------------------
    def fail(self, error: BaseException, *, on: Operation = "realtime", call: int | None = None,
             when: Callable[[Received], bool] | None = None, times: int | None = 1, billed: bool = False,
             server_s: float = 0.0) -> None:
        """Raise ``error`` at the ``call``-th call (from 1) of operation ``on``, or at calls whose request
        matches ``when``; ``times`` limits how often it fires (None: every matching call).

        Real time, ``billed``: the request is answered and billed, and the answer is lost on its way back
        (a timeout, a gateway's 504); with ``server_s`` the server keeps the request in flight that much
        longer after the client saw the error (it counts in ``in_flight`` / ``max_in_flight``)."""
        self._faults.append(_Fault(error, on, call, when, times, billed, server_s))

    def sent(self, mode: Mode = "realtime") -> list[Received]:
        return [r for r in self.history if r.mode == mode]

    @property
    def submissions(self) -> int:
        """Calls of submit_batch, including those that failed."""
        return self.calls.get("submit", 0)

    # -- bookkeeping ------------------------------------------------------------------------------------
    def _due(self, on: Operation, received: Received | None = None) -> _Fault | None:
        """Count a call of ``on``; the scheduled fault that fires for it, if any."""
        number = self.calls[on] = self.calls.get(on, 0) + 1
        for fault in self._faults:
            if fault.on == on and fault.fires(number, received):
                if fault.times is not None:
                    fault.times -= 1
                return fault
        return None

    def _operation(self, on: Operation, received: Received | None = None) -> None:
        fault = self._due(on, received)
        if fault is not None:
            raise fault.error

    def _receive(self, mode: Mode, params: dict[str, Any], *, request: ModelRequest | None = None,
                 custom_id: str | None = None, batch_id: str | None = None) -> Received:
        occurrence = 0
        if mode != "count_tokens":
            body = digest({"params": params, "replicate": request.replicate if request else None})
            occurrence = self._seen.get(body, 0)
            self._seen[body] = occurrence + 1
        received = Received(index=len(self.history), mode=mode, params=params, request=request,
                            custom_id=custom_id, batch_id=batch_id, occurrence=occurrence)
        self.history.append(received)
        return received

    def _answer(self, received: Received) -> dict[str, Any]:
        result = self.answer(received)
        if isinstance(result, BaseException):
            raise result
        return result

    # -- Provider ---------------------------------------------------------------------------------------
    async def generate(self, request: ModelRequest) -> ModelResponse:
        received = self._receive("realtime", request.params, request=request)
        fault = self._due("realtime", received)  # decided on arrival: "the k-th call" is the k-th received
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.events.append(("start", received.index))
        tail = 0.0
        try:
            await asyncio.sleep(self.latency_s)  # yields even at 0: concurrent calls really overlap
            if fault is not None:
                if fault.billed:
                    self._answer(received)
                    self.billed.append(received)
                    tail = fault.server_s
                raise fault.error
            body = self._answer(received)
        finally:
            if tail > 0:
                asyncio.get_running_loop().call_later(tail, self._server_done)
            else:
                self.in_flight -= 1
            self.events.append(("end", received.index))
        self.billed.append(received)
        return ModelResponse(message=body, request_id=f"req_fake_{received.index}", simulated=self.simulated,
                             extra={"retries": 0})

    def _server_done(self) -> None:
        self.in_flight -= 1

    def timeout_for(self, request: ModelRequest) -> float:
        """How long the client waits for an answer (evalkit keeps a timed-out attempt's slot as long)."""
        return self.timeout_s

    async def count_tokens(self, request: ModelRequest) -> int:
        received = self._receive("count_tokens", request.params, request=request)
        self._operation("count_tokens", received)
        return estimate_tokens(request.params)

    async def submit_batch(self, items: list[tuple[str, dict[str, Any]]]) -> BatchInfo:
        if self.on_submit is not None:
            self.on_submit(items)
        self._operation("submit")
        custom_ids = [custom_id for custom_id, _ in items]
        if not items or len(items) > MAX_BATCH_REQUESTS:
            raise ProviderError(f"a batch holds 1 to {MAX_BATCH_REQUESTS} requests, got {len(items)}",
                                status=400, error_type="invalid_request_error")
        if len(set(custom_ids)) != len(custom_ids) or not all(CUSTOM_ID.match(c) for c in custom_ids):
            raise ProviderError("custom_id values must be unique and match ^[a-zA-Z0-9_-]{1,64}$",
                                status=400, error_type="invalid_request_error")
        batch_id = f"msgbatch_fake{len(self.batches) + 1:04d}"
        received = [self._receive("batch", params, custom_id=custom_id, batch_id=batch_id)
                    for custom_id, params in items]
        polls = (self.batch_polls if isinstance(self.batch_polls, int)
                 else self.batch_polls[min(len(self.batches), len(self.batch_polls) - 1)])
        batch = FakeBatch(id=batch_id, created_at=self.clock(), items=received, polls_left=polls,
                          hidden_lists=self.list_lag)
        self.batches[batch_id] = batch
        self._operation("submitted")
        return batch.info()

    async def get_batch(self, batch_id: str) -> BatchInfo:
        self._operation("poll")
        batch = self._batch(batch_id)
        if batch.status != "ended":
            if batch.polls_left > 0 and not batch.cancel_requested:
                batch.polls_left -= 1
            else:
                self._process(batch)
        return batch.info()

    async def list_batches(self, limit: int = 100) -> list[BatchInfo]:
        self._operation("list")
        newest_first = sorted(self.batches.values(), key=lambda b: b.created_at, reverse=True)
        shown = []
        for batch in newest_first:
            if batch.hidden_lists > 0:
                batch.hidden_lists -= 1
            else:
                shown.append(batch)
        return [batch.info() for batch in shown[:limit]]

    async def cancel_batch(self, batch_id: str) -> BatchInfo:
        """Items not processed yet end canceled (not billed): here, all of an unended batch's items."""
        self._operation("cancel")
        batch = self._batch(batch_id)
        if batch.status != "ended":
            batch.cancel_requested = True
            batch.status = "canceling"
        return batch.info()

    async def batch_results(self, batch_id: str) -> AsyncIterator[BatchItemResult]:
        self._operation("results")
        batch = self._batch(batch_id)
        if batch.status != "ended":
            raise ProviderError(f"batch {batch_id} has not ended; its results are not available yet",
                                status=400, error_type="invalid_request_error")
        for result in batch.results:
            yield result

    async def aclose(self) -> None:
        self.closed = True

    # -- batch processing -------------------------------------------------------------------------------
    def _batch(self, batch_id: str) -> FakeBatch:
        if batch_id not in self.batches:
            raise ProviderError(f"the API does not know batch {batch_id} (404)", status=404)
        return self.batches[batch_id]

    def _process(self, batch: FakeBatch) -> None:
        """End the batch: every item's outcome is decided (and succeeded ones billed) exactly once."""
        for item in batch.items:
            assert item.custom_id is not None
            outcome = CANCELED if batch.cancel_requested else self.outcome(item)
            if outcome.kind == "succeeded":
                try:
                    body = self._answer(item)
                except ProviderError as error:
                    outcome = errored(error.error_type or "api_error")
                else:
                    self.billed.append(item)
                    batch.results.append(BatchItemResult(item.custom_id, "succeeded", message=body,
                                                         request_id=f"req_fake_{item.index}"))
                    continue
            if outcome.kind == "errored":
                batch.results.append(BatchItemResult(item.custom_id, "errored", error_type=outcome.error_type,
                                                     error_message=f"fake {outcome.error_type}",
                                                     request_id=f"req_fake_{item.index}"))
            else:
                batch.results.append(BatchItemResult(item.custom_id, outcome.kind))
        batch.status = "ended"


def fake_backend(provider: FakeProvider, kind: str = "api") -> Backend:
    """A run backend around the fake (``Backend`` is typed for the SDK adapter it usually holds)."""
    return Backend(cast(Any, provider), kind, "in-process fake provider")
