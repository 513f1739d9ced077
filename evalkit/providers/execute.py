"""Runs model requests through the cached provider with bounded concurrency.

Each answer is written to the response cache the moment it arrives, so a crash or Ctrl-C loses nothing:
the next run reads what was already paid for and sends only the rest. Identical requests are sent once.

Nothing is paid twice without a word:

* **Processes share the work.** A request is sent only under its claim in the cache folder (a file lock
  the OS releases when its process dies, even by ``kill -9``). A second process that wants the same
  answer meanwhile works on other requests first, then waits for the claim and reads the answer from the
  cache instead of paying for it again.
* **Retries are evalkit's, and counted.** The provider sends each attempt once; this module retries
  (429, 5xx, timeouts, dropped connections; ``retry-after`` honoured, exponential backoff with jitter).
  The Messages API has no idempotency key, so an attempt that timed out or lost its connection after the
  request went out may have been answered and billed anyway: every retry after such an attempt is counted
  as *possibly billed twice*, per request, so the cost a run reports is a true upper bound.
* **The concurrency limit holds at the server too.** An attempt that timed out keeps its slot for as long
  again as its timeout (the server may still be working on it), so the retry cannot push the requests in
  flight at the server above ``concurrency``.
* **A run killed mid-request is counted too.** Before each attempt, a mark beside its claim says how
  many attempts may have been billed; an answered request whose earlier attempts may have been billed
  leaves a tally until its run's report is written. A later run counts the marks and tallies of dead
  processes (:meth:`ResponseCache.adopt_orphans`), so no kill erases a possible double payment.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from evalkit._hashing import digest
from evalkit.errors import AuthError, CacheError, ModelNotFoundError, ProviderError
from evalkit.progress import NullProgress, Progress
from evalkit.prompts.render import ModelRequest
from evalkit.providers.base import ModelResponse, Provider
from evalkit.providers.response_cache import Claim, ResponseCache, request_key

#: Errors that will fail every other request the same way: stop the run instead of recording each.
FATAL_ERRORS = (AuthError, ModelNotFoundError)
Sleep = Callable[[float], Awaitable[None]]
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)  # slots: one per sample or call, all kept (issue 20)
class CallResult:
    request: ModelRequest
    response: ModelResponse | None
    error: ProviderError | None
    from_cache: bool
    #: Attempts for this request that may have been billed without their answer arriving (timeouts,
    #: connections lost after sending, a run killed mid-request): what the cost's upper bound adds.
    maybe_billed: int = 0


@dataclass
class ExecutionStats:
    requests_sent: int = 0
    cache_hits: int = 0
    errors: int = 0
    deduplicated: int = 0
    retries: int = 0  # retries (429 / 5xx / timeouts / dropped connections) behind the answers
    #: Retries sent after an attempt that may have been billed: each may have paid for the request twice.
    possibly_billed_twice: int = 0
    timeouts: int = 0  # attempts that timed out
    #: Answers another process was fetching when this one wanted them: waited for, not paid again.
    shared: int = 0
    by_model: dict[str, int] = field(default_factory=dict)

    def merge(self, other: ExecutionStats) -> None:
        """Add another execution's counts (e.g. the judge's requests after the task's own)."""
        self.requests_sent += other.requests_sent
        self.cache_hits += other.cache_hits
        self.errors += other.errors
        self.deduplicated += other.deduplicated
        self.retries += other.retries
        self.possibly_billed_twice += other.possibly_billed_twice
        self.timeouts += other.timeouts
        self.shared += other.shared
        for model, count in other.by_model.items():
            self.by_model[model] = self.by_model.get(model, 0) + count


def cache_prefix(request: ModelRequest) -> tuple[str, str]:
    """What a prompt-cache entry is shared by: the model and the static system blocks (a candidate
    configuration with its own prompt has a prefix of its own, and needs its own warm-up request)."""
    return request.model, digest(request.params.get("system"))


def partition(requests: list[ModelRequest], endpoint: str, cache: ResponseCache, stats: ExecutionStats
              ) -> tuple[list[str], dict[str, ModelResponse], dict[str, ModelRequest]]:
    """(key per request, cached answers, distinct requests still to send). A read-only session that
    would have to send anything fails here, before any request."""
    keys = [request_key(endpoint, request) for request in requests]
    cached: dict[str, ModelResponse] = {}
    pending: dict[str, ModelRequest] = {}
    for key, request in zip(keys, requests, strict=True):
        if key in cached or key in pending:
            stats.deduplicated += 1
            continue
        hit = cache.get_key(key)
        if hit is not None:
            cached[key] = hit
            stats.cache_hits += 1
        else:
            pending[key] = request
    log.debug("%d requests: %d answered from the response cache, %d duplicates, %d to send (cache mode %s)",
              len(requests), len(cached), len(requests) - len(cached) - len(pending), len(pending),
              cache.mode)
    if pending and cache.mode == "read-only":
        raise CacheError(
            f"{len(pending)} of {len(cached) + len(pending)} distinct requests are not in the response "
            "cache, and this session may only read cached responses (zero API requests)",
            hint="run `evalkit run` for this task first (same prompt, models and sample) to fill the cache",
        )
    return keys, cached, pending


def backoff_s(retry: int, error: ProviderError) -> float:
    """How long to wait before retry number ``retry`` (from 0): what the server asked for, else the SDK's
    own schedule (0.5 s doubling to at most 8 s, minus up to 25% jitter)."""
    if error.retry_after_s is not None:
        return error.retry_after_s
    return min(0.5 * 2.0 ** retry, 8.0) * (1 - 0.25 * random.random())


class _Slots:
    """The concurrency limit, shared by live attempts and by timed-out attempts the server may still be
    working on (each keeps its slot for ``hold_s`` after it was abandoned)."""

    def __init__(self, limit: int) -> None:
        self._semaphore = asyncio.Semaphore(limit)
        self._held: set[asyncio.TimerHandle] = set()

    async def acquire(self) -> None:
        await self._semaphore.acquire()

    def release(self) -> None:
        self._semaphore.release()

    def keep_for(self, hold_s: float) -> None:
        """Release the caller's slot only after ``hold_s`` seconds (or when the run ends)."""
        if hold_s <= 0:
            self.release()
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def release() -> None:
            if handle is not None:
                self._held.discard(handle)
            self._semaphore.release()

        handle = loop.call_later(hold_s, release)
        self._held.add(handle)

    def close(self) -> None:
        for handle in list(self._held):
            handle.cancel()
        self._held.clear()


async def execute_realtime(
    requests: list[ModelRequest],
    provider: Provider,
    cache: ResponseCache,
    *,
    concurrency: int,
    progress: Progress | None = None,
    label: str = "requests",
    warmup: bool = False,
    on_response: Callable[[ModelRequest, ModelResponse], bool] | None = None,
    max_retries: int = 0,
    sleep: Sleep = asyncio.sleep,
    claim_poll_s: float = 0.05,
) -> tuple[list[CallResult], ExecutionStats]:
    """Answer every request, from the cache where possible, else from the provider (see the module
    docstring for claims, retries and the counts of possible double billing).

    ``warmup``: send the first request of each model alone, so it writes the prompt cache before the
    others are sent (requests sent in parallel with the writer all miss and would all pay to write).
    ``on_response``: called with each new paid answer; returning False stops sending further requests
    (the budget guard). Requests not sent are reported as errors, and what arrived is cached.
    ``max_retries``: retries per request after retryable errors (0: none).
    """
    progress = progress or NullProgress()
    stats = ExecutionStats()
    keys, cached, pending = partition(requests, provider.endpoint, cache, stats)
    answers: dict[str, CallResult] = {
        key: CallResult(request=request, response=cached[key], error=None, from_cache=True)
        for key, request in zip(keys, requests, strict=True) if key in cached}

    if pending:
        progress.start(label, total=len(pending))
    slots = _Slots(concurrency)
    hold_for = getattr(provider, "timeout_for", None)
    stopped = False

    def finish(key: str, result: CallResult) -> None:
        answers[key] = result
        progress.advance()

    async def send(key: str, request: ModelRequest, claim: Claim) -> None:
        """Send one request under its claim: retries, counts, the in-flight mark."""
        nonlocal stopped
        maybe_billed = claim.orphaned_attempts()  # a run died with this request in flight
        retry = 0
        while True:
            if stopped:
                stats.errors += 1
                unsent = ProviderError("not sent: the run stopped at its budget")
                finish(key, CallResult(request, None, unsent, False, maybe_billed))
                return
            await slots.acquire()
            if stopped:  # the budget was reached while this request waited for its slot
                slots.release()
                continue
            if retry == 0:
                stats.requests_sent += 1
                stats.by_model[request.model] = stats.by_model.get(request.model, 0) + 1
                stats.possibly_billed_twice += maybe_billed
            claim.mark(maybe_billed + 1, request)  # this attempt too, until its outcome is known
            try:
                response = await provider.generate(request)
            except FATAL_ERRORS:
                slots.release()
                claim.mark(maybe_billed, request)
                raise
            except ProviderError as error:
                if error.timed_out:
                    stats.timeouts += 1
                if error.timed_out and hold_for is not None:
                    slots.keep_for(hold_for(request))  # the server may still be working on it
                else:
                    slots.release()
                if error.maybe_billed:
                    maybe_billed += 1
                else:
                    claim.mark(maybe_billed, request)  # this attempt cannot have been billed
                if error.retryable and retry < max_retries:
                    await sleep(backoff_s(retry, error))
                    retry += 1
                    stats.retries += 1
                    if error.maybe_billed:
                        stats.possibly_billed_twice += 1
                    continue
                stats.errors += 1
                log.info("no answer for %s/%s from %s: %s", request.role, request.sample_id, request.model,
                         error.message, extra={"request_id": error.request_id})
                finish(key, CallResult(request, None, error, False, maybe_billed))
                return
            except BaseException:
                slots.release()  # cancelled (another request failed fatally): the mark stays
                raise
            slots.release()
            cache.put_key(key, response)  # before the mark goes: a crash in between is counted, not lost
            claim.answered(maybe_billed, request)
            stats.retries += int(response.extra.get("retries") or 0)
            finish(key, CallResult(request, response, None, False, maybe_billed))
            if on_response is not None and not on_response(request, response):
                stopped = True
            return

    async def answer(key: str, claim: Claim) -> None:
        """Under the claim: another process may have answered meanwhile; else send."""
        try:
            shared = cache.get_key(key)
            if shared is not None:
                stats.cache_hits += 1
                stats.shared += 1
                finish(key, CallResult(pending[key], shared, None, True))
                return
            await send(key, pending[key], claim)
        finally:
            claim.release()

    async def worker(queue: deque[str], waiting: deque[str]) -> None:
        while queue:
            key = queue.popleft()
            claim = cache.claim(key)
            if claim.try_acquire():
                await answer(key, claim)
            else:
                waiting.append(key)  # someone else is fetching it: come back when the rest is done
        while waiting:
            key = waiting.popleft()
            claim = cache.claim(key)
            await claim.acquire(poll_s=claim_poll_s)
            await answer(key, claim)

    async def phase(chosen: list[str]) -> None:
        queue, waiting = deque(chosen), deque[str]()
        tasks = [asyncio.create_task(worker(queue, waiting)) for _ in range(min(concurrency, len(chosen)))]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    first_per_model: dict[tuple[str, str], str] = {}
    if warmup:
        for key, request in pending.items():
            first_per_model.setdefault(cache_prefix(request), key)
    try:
        if first_per_model:
            await phase(list(first_per_model.values()))
        warm = set(first_per_model.values())
        rest = [key for key in pending if key not in warm]
        if rest:
            await phase(rest)
    finally:
        slots.close()
        progress.stop()

    results = []
    for key, request in zip(keys, requests, strict=True):
        result = answers[key]
        # An identical request answered by the same call: the same answer, no second count of its cost.
        results.append(result if result.request is request else CallResult(
            request, result.response, result.error, result.from_cache))
    return results, stats
