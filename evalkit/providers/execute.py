"""Runs model requests through the cached provider with bounded concurrency.

Each answer is written to the response cache the moment it arrives, so a crash or Ctrl-C loses nothing:
the next run reads what was already paid for and sends only the rest. Identical requests are sent once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from evalkit.errors import AuthError, CacheError, ModelNotFoundError, ProviderError
from evalkit.progress import NullProgress, Progress
from evalkit.prompts.render import ModelRequest
from evalkit.providers.base import ModelResponse, Provider
from evalkit.providers.response_cache import ResponseCache, request_key

#: Errors that will fail every other request the same way: stop the run instead of recording each.
FATAL_ERRORS = (AuthError, ModelNotFoundError)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallResult:
    request: ModelRequest
    response: ModelResponse | None
    error: ProviderError | None
    from_cache: bool


@dataclass
class ExecutionStats:
    requests_sent: int = 0
    cache_hits: int = 0
    errors: int = 0
    deduplicated: int = 0
    retries: int = 0  # SDK retries (429 / 5xx / dropped connections) behind the answers
    by_model: dict[str, int] = field(default_factory=dict)

    def merge(self, other: ExecutionStats) -> None:
        """Add another execution's counts (e.g. the judge's requests after the task's own)."""
        self.requests_sent += other.requests_sent
        self.cache_hits += other.cache_hits
        self.errors += other.errors
        self.deduplicated += other.deduplicated
        self.retries += other.retries
        for model, count in other.by_model.items():
            self.by_model[model] = self.by_model.get(model, 0) + count


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
        hit = cache.get(endpoint, request)
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
) -> tuple[list[CallResult], ExecutionStats]:
    """Answer every request, from the cache where possible, else from the provider.

    ``warmup``: send the first request of each model alone, so it writes the prompt cache before the
    others are sent (requests sent in parallel with the writer all miss and would all pay to write).
    ``on_response``: called with each new paid answer; returning False stops sending further requests
    (the budget guard). Requests not sent are reported as errors, and what arrived is cached.
    """
    progress = progress or NullProgress()
    stats = ExecutionStats()
    keys, cached, pending = partition(requests, provider.endpoint, cache, stats)
    answers: dict[str, tuple[ModelResponse | None, ProviderError | None, bool]] = {
        key: (response, None, True) for key, response in cached.items()}

    if pending:
        progress.start(label, total=len(pending))
    semaphore = asyncio.Semaphore(concurrency)

    stopped = False

    async def call(key: str, request: ModelRequest) -> None:
        nonlocal stopped
        async with semaphore:
            if stopped:
                answers[key] = (None, ProviderError("not sent: the run stopped at its budget"), False)
                stats.errors += 1
                progress.advance()
                return
            try:
                response = await provider.generate(request)
            except FATAL_ERRORS:
                raise
            except ProviderError as error:
                answers[key] = (None, error, False)
                stats.errors += 1
                log.info("no answer for %s/%s from %s: %s", request.role, request.sample_id, request.model,
                         error.message, extra={"request_id": error.request_id})
            else:
                cache.put(provider.endpoint, request, response)
                answers[key] = (response, None, False)
                stats.retries += int(response.extra.get("retries") or 0)
                if on_response is not None and not on_response(request, response):
                    stopped = True
            finally:
                stats.requests_sent += 1
                stats.by_model[request.model] = stats.by_model.get(request.model, 0) + 1
                progress.advance()

    first_per_model: dict[str, str] = {}
    if warmup:
        for key, request in pending.items():
            first_per_model.setdefault(request.model, key)
    tasks: list[asyncio.Task[None]] = []
    try:
        if first_per_model:
            tasks = [asyncio.create_task(call(key, pending[key])) for key in first_per_model.values()]
            await asyncio.gather(*tasks)
        rest = [key for key in pending if key not in set(first_per_model.values())]
        tasks = [asyncio.create_task(call(key, pending[key])) for key in rest]
        if tasks:
            await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    finally:
        progress.stop()

    results = []
    for key, request in zip(keys, requests, strict=True):
        response, error, from_cache = answers[key]
        results.append(CallResult(request=request, response=response, error=error, from_cache=from_cache))
    return results, stats
