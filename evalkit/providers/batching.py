"""Message Batches with a crash-safe ledger: submit once, re-attach after any crash, reconcile failures.

The ledger is one small JSON file per submission under ``<cache_dir>/../batches/``. It is written
*before* a batch is created (state ``submitting``) and again as soon as the API returns its id
(``submitted``), so a process killed at any point — even by ``kill -9`` — leaves enough behind for the
next run to pick up the same batch instead of paying for the same requests again:

* ``submitted`` records are re-attached: their requests are not resubmitted; the run polls them.
* ``submitting`` records (killed during the create call) are matched against the API's batch list by
  creation time and size; an exact single match is adopted, no match means the create never landed.
* results are written to the response cache line by line as they are read, then the record becomes
  ``collected`` with each item's outcome; errored / expired / canceled items are resubmitted up to
  ``batch.max_attempts`` submissions, then finished in real time (``--fallback realtime``) or reported.

Submission happens under a file lock, so two evalkit processes sharing a cache never submit the same
request twice: the second one finds the first one's batch and waits for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock

from evalkit._io import atomic_write_json
from evalkit.config import BatchSettings
from evalkit.errors import BatchPendingError, ProviderError
from evalkit.progress import NullProgress, Progress, duration, eta
from evalkit.prompts.render import ModelRequest
from evalkit.providers.base import BatchInfo, ModelResponse, Provider
from evalkit.providers.execute import CallResult, ExecutionStats, execute_realtime, partition
from evalkit.providers.response_cache import ResponseCache

LEDGER_SCHEMA = 1
#: Errors worth another submission; anything else (invalid request, unknown model) fails the same way again.
RETRYABLE_ERROR_TYPES = frozenset({"api_error", "overloaded_error", "rate_limit_error", "timeout_error"})
Fallback = Literal["none", "realtime"]
log = logging.getLogger(__name__)


@dataclass
class LedgerRecord:
    """One batch submission, as persisted."""

    record_id: str
    endpoint: str
    state: str  # "submitting" | "submitted" | "collected" | "never_submitted" | "unresolved"
    created_at: str
    attempt: int
    items: dict[str, str]  # custom_id -> response-cache key
    batch_id: str | None = None
    outcomes: dict[str, str] = field(default_factory=dict)  # custom_id -> outcome, once collected
    schema: int = LEDGER_SCHEMA

    @property
    def open(self) -> bool:
        return self.state in ("submitting", "submitted")


class BatchLedger:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)

    def lock(self) -> FileLock:
        return FileLock(str(self.directory / ".submit.lock"))

    def write(self, record: LedgerRecord) -> None:
        atomic_write_json(self.directory / f"{record.record_id}.json", asdict(record))

    def records(self, endpoint: str) -> list[LedgerRecord]:
        out = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # a foreign or damaged file is not ours to interpret
            if data.get("schema") == LEDGER_SCHEMA and data.get("endpoint") == endpoint:
                out.append(LedgerRecord(**data))
        return out


def custom_id_for(request: ModelRequest, key: str) -> str:
    """A readable, valid (``^[a-zA-Z0-9_-]{1,64}$``), unique custom_id: role, sample id, key prefix."""
    sample = re.sub(r"[^a-zA-Z0-9_-]", "_", request.sample_id)[:36]
    return f"{request.role[0]}{request.replicate}-{sample}-{key[:16]}"


def chunk_items(items: list[tuple[str, dict[str, Any]]], settings: BatchSettings
                ) -> list[list[tuple[str, dict[str, Any]]]]:
    """Split into batches within the API's request-count and byte limits."""
    chunks: list[list[tuple[str, dict[str, Any]]]] = []
    current: list[tuple[str, dict[str, Any]]] = []
    size = len('{"requests":[]}')
    for custom_id, params in items:
        item_size = len(json.dumps({"custom_id": custom_id, "params": params}).encode()) + 1
        if item_size + len('{"requests":[]}') > settings.max_bytes:
            raise ProviderError(f"request {custom_id} alone is {item_size} bytes, over the batch size limit",
                                hint="shorten the prompt or raise batch.max_bytes (API limit 256 MB)")
        if current and (len(current) >= settings.max_requests or size + item_size > settings.max_bytes):
            chunks.append(current)
            current, size = [], len('{"requests":[]}')
        current.append((custom_id, params))
        size += item_size
    if current:
        chunks.append(current)
    return chunks


@dataclass
class BatchReport:
    """What happened in batch mode, for summary.json."""

    batch_ids: list[str] = field(default_factory=list)
    reattached: list[str] = field(default_factory=list)
    submitted_items: int = 0
    resubmitted_items: int = 0
    failed_items: dict[str, int] = field(default_factory=dict)  # outcome -> count (before reconciliation)
    fallback_realtime: int = 0
    given_up: int = 0
    warmup_items: int = 0
    poll_seconds: float = 0.0

    def merge(self, other: BatchReport) -> None:
        """Add another execution's batch activity (sequential looks, the judge)."""
        self.batch_ids = sorted({*self.batch_ids, *other.batch_ids})
        self.reattached = sorted({*self.reattached, *other.reattached})
        self.submitted_items += other.submitted_items
        self.resubmitted_items += other.resubmitted_items
        for outcome, count in other.failed_items.items():
            self.failed_items[outcome] = self.failed_items.get(outcome, 0) + count
        self.fallback_realtime += other.fallback_realtime
        self.given_up += other.given_up
        self.warmup_items += other.warmup_items
        self.poll_seconds += other.poll_seconds


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


class _BatchRun:
    def __init__(self, provider: Provider, cache: ResponseCache, ledger: BatchLedger, settings: BatchSettings,
                 progress: Progress, sleep: Callable[[float], Awaitable[None]]) -> None:
        self.provider, self.cache, self.ledger, self.settings = provider, cache, ledger, settings
        self.progress, self.sleep = progress, sleep
        self.report = BatchReport()
        self.answers: dict[str, tuple[ModelResponse | None, ProviderError | None]] = {}

    # -- ledger bookkeeping --------------------------------------------------------------------------
    def _attempts(self, records: list[LedgerRecord]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in records:
            if record.state in ("submitted", "collected", "submitting"):
                for key in record.items.values():
                    counts[key] = counts.get(key, 0) + 1
        return counts

    async def _resolve_submitting(self, record: LedgerRecord, known_ids: set[str]) -> None:
        """A process died during create: find out whether the batch exists."""
        created = datetime.fromisoformat(record.created_at)
        batches = await self.provider.list_batches(limit=100)
        matches = [
            b for b in batches
            if b.id not in known_ids and b.total == len(record.items) and b.created_at is not None
            and created - timedelta(minutes=2) <= b.created_at <= created + timedelta(minutes=10)
        ]
        log.info("ledger record %s was interrupted during create: %d matching batch(es) at the API",
                 record.record_id, len(matches))
        if len(matches) == 1:
            record.batch_id, record.state = matches[0].id, "submitted"
            self.progress.note(f"re-attached to batch {record.batch_id}, created by an interrupted run")
        elif not matches:
            record.state = "never_submitted"
        else:
            record.state = "unresolved"
            self.progress.note(
                f"warning: an interrupted run may have created one of {', '.join(b.id for b in matches)} "
                "(same size and time); not adopting either. Check the Console and cancel duplicates.")
        self.ledger.write(record)

    async def _submit(self, pending: dict[str, ModelRequest], endpoint: str) -> list[LedgerRecord]:
        """Under the ledger lock: re-attach to open submissions, submit what nobody has submitted."""
        with self.ledger.lock():
            records = self.ledger.records(endpoint)
            known_ids = {r.batch_id for r in records if r.batch_id}
            for record in records:
                if record.state == "submitting":
                    await self._resolve_submitting(record, known_ids)
            open_records = [r for r in records if r.state == "submitted"]
            in_flight = {key for r in open_records for key in r.items.values()}
            attempts = self._attempts(records)
            wanted = [key for key in pending if key not in self.answers and key not in in_flight]
            for record in open_records:
                if (set(record.items.values()) & set(pending)
                        and record.batch_id not in self.report.reattached):
                    self.report.reattached.append(str(record.batch_id))
                    log.info("re-attached to batch %s (%d requests, submitted %s)", record.batch_id,
                             len(record.items), record.created_at, extra={"batch_id": record.batch_id})
            submit = [key for key in wanted if attempts.get(key, 0) < self.settings.max_attempts]
            key_of = {custom_id_for(pending[key], key): key for key in submit}
            items = [(custom_id, pending[key].params) for custom_id, key in key_of.items()]
            new_records = []
            for chunk in chunk_items(items, self.settings):
                keys = {custom_id: key_of[custom_id] for custom_id, _ in chunk}
                attempt = 1 + max(attempts.get(key, 0) for key in keys.values())
                record = LedgerRecord(record_id=uuid.uuid4().hex, endpoint=endpoint, state="submitting",
                                      created_at=_stamp(datetime.now(UTC)), attempt=attempt, items=keys)
                self.ledger.write(record)  # before the create call: a crash here is resolvable
                info = await self.provider.submit_batch(chunk)
                record.batch_id, record.state = info.id, "submitted"
                self.ledger.write(record)
                log.info("submitted batch %s: %d requests, attempt %d (ledger record %s)", info.id,
                         len(chunk), attempt, record.record_id, extra={"batch_id": info.id})
                self.report.submitted_items += len(chunk)
                self.report.resubmitted_items += sum(1 for key in keys.values() if attempts.get(key, 0) > 0)
                new_records.append(record)
            return [r for r in open_records if set(r.items.values()) & set(pending)] + new_records

    # -- polling and collection ----------------------------------------------------------------------
    async def _collect(self, record: LedgerRecord, wanted: dict[str, ModelRequest]) -> None:
        assert record.batch_id is not None
        async for item in self.provider.batch_results(record.batch_id):
            key = record.items.get(item.custom_id)
            if key is None:
                continue
            record.outcomes[item.custom_id] = item.outcome
            if item.outcome == "succeeded" and item.message is not None:
                response = ModelResponse(message=item.message, simulated=self.provider.simulated,
                                         mode="batch", batch_id=record.batch_id)
                self.cache.put_key(key, response)
                if key in wanted:
                    self.answers[key] = (response, None)
                    self.progress.advance()
            else:
                self.report.failed_items[item.outcome] = self.report.failed_items.get(item.outcome, 0) + 1
                if (item.outcome == "errored" and item.error_type not in RETRYABLE_ERROR_TYPES
                        and key in wanted):
                    # Resubmitting cannot help (e.g. invalid_request_error): final.
                    self.answers[key] = (None, ProviderError(
                        f"batch {record.batch_id} item {item.custom_id} errored: {item.error_type}: "
                        f"{item.error_message}", error_type=item.error_type, request_id=item.request_id))
                    self.progress.advance()
        for custom_id in record.items:
            record.outcomes.setdefault(custom_id, "missing")
        record.state = "collected"
        self.ledger.write(record)
        tally: dict[str, int] = {}
        for outcome in record.outcomes.values():
            tally[outcome] = tally.get(outcome, 0) + 1
        log.info("collected batch %s: %s", record.batch_id, ", ".join(f"{n} {o}" for o, n in tally.items()),
                 extra={"batch_id": record.batch_id})

    async def _wait(self, records: list[LedgerRecord], wanted: dict[str, ModelRequest],
                    deadline: float | None, started: float) -> None:
        waiting = {r.batch_id: r for r in records if r.state == "submitted"}
        delay = self.settings.poll_initial_s
        last_label = ""
        while waiting:
            infos: list[BatchInfo] = []
            for batch_id, record in list(waiting.items()):
                info = await self.provider.get_batch(str(batch_id))
                infos.append(info)
                if info.ended:
                    await self._collect(record, wanted)
                    del waiting[batch_id]
            label = _status_label(infos, time.monotonic() - started)
            if label != last_label:
                self.progress.update(label)
                last_label = label
            if not waiting:
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                done = sum(1 for key in wanted if key in self.answers)
                raise BatchPendingError(
                    f"batch{'es' if len(waiting) > 1 else ''} {', '.join(map(str, waiting))} still "
                    f"processing after the --max-wait of {deadline - started:.0f} s ({done} of {len(wanted)} "
                    "answers in); nothing is lost: run the same command again to pick up the results "
                    "(nothing is resubmitted)",
                    batch_ids=[str(b) for b in waiting],
                )
            pause = delay if deadline is None else min(delay, max(deadline - now, 0.01))
            await self.sleep(pause)
            self.report.poll_seconds += pause
            delay = min(delay * 1.5, self.settings.poll_max_s)


def _status_label(infos: list[BatchInfo], elapsed: float) -> str:
    totals: dict[str, int] = {}
    for info in infos:
        for name, count in info.counts.items():
            totals[name] = totals.get(name, 0) + count
    parts = [f"{count} {name}" for name, count in totals.items() if count]
    minutes, seconds = divmod(int(elapsed), 60)
    ended = sum(info.ended for info in infos)
    processing = totals.get("processing", 0)
    left = eta(sum(totals.values()) - processing, sum(totals.values()), elapsed)  # at the rate so far
    return (f"batch: {ended}/{len(infos)} ended · " + (", ".join(parts) or "waiting") +
            f" · {minutes}m{seconds:02d}s" + (f" · eta {duration(left)}" if left is not None else ""))


async def preflight(provider: Provider, requests: list[ModelRequest]) -> None:
    """One free count_tokens call per model before submitting: the API validates batch items only after
    the batch has run (up to 24 h later), so a wrong model id or key must be caught now."""
    seen: dict[str, ModelRequest] = {}
    for request in requests:
        seen.setdefault(request.model, request)
    for request in seen.values():
        await provider.count_tokens(request)  # raises AuthError / ModelNotFoundError


async def execute_batch(
    requests: list[ModelRequest],
    provider: Provider,
    cache: ResponseCache,
    ledger: BatchLedger,
    settings: BatchSettings,
    *,
    max_wait_s: float | None = None,
    fallback: Fallback = "none",
    concurrency: int = 8,
    progress: Progress | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    warmup: bool = False,
) -> tuple[list[CallResult], ExecutionStats, BatchReport]:
    """Answer every request from the cache or through Message Batches (see the module docstring)."""
    progress = progress or NullProgress()
    if not provider.supports_batch:
        raise ProviderError(f"{provider.endpoint} does not support Message Batches",
                            hint="use --mode realtime")
    stats = ExecutionStats()
    keys, cached, pending = partition(requests, provider.endpoint, cache, stats)

    if pending:
        await preflight(provider, list(pending.values()))
    run = _BatchRun(provider, cache, ledger, settings, progress, sleep)
    started = time.monotonic()
    deadline = started + max_wait_s if max_wait_s is not None else None
    if pending:
        progress.start("batch", total=len(pending))
        try:
            touched = {key for r in ledger.records(provider.endpoint) for key in r.items.values()}
            if warmup and not touched & set(pending):
                # The documented recipe: one request per model writes the 1 h cache, then the rest read it.
                first: dict[str, str] = {}
                for key, request in pending.items():
                    first.setdefault(request.model, key)
                if len(first) < len(pending):
                    warm = {key: pending[key] for key in first.values()}
                    progress.update(f"batch: warm-up ({len(warm)} request(s) write the prompt cache)")
                    records = await run._submit(warm, provider.endpoint)
                    await run._wait(records, warm, deadline, started)
                    run.report.warmup_items = len(warm)
            while True:
                unanswered = {k: r for k, r in pending.items() if k not in run.answers}
                if not unanswered:
                    break
                records = await run._submit(unanswered, provider.endpoint)
                if not records:
                    break  # nothing in flight and nothing submittable: attempts exhausted
                await run._wait(records, unanswered, deadline, started)
        finally:
            progress.stop()

    leftovers = {k: r for k, r in pending.items() if k not in run.answers}
    if leftovers:
        log.info("%d request(s) unanswered after %d batch submission(s)", len(leftovers),
                 settings.max_attempts)
    if leftovers and fallback == "realtime":
        progress.note(f"{len(leftovers)} request(s) still unanswered after {settings.max_attempts} batch "
                      "submission(s); finishing them in real time (--fallback realtime)")
        results, realtime_stats = await execute_realtime(list(leftovers.values()), provider, cache,
                                                         concurrency=concurrency, progress=progress,
                                                         label="realtime fallback")
        for key, result in zip(leftovers, results, strict=True):
            run.answers[key] = (result.response, result.error)
        run.report.fallback_realtime = len(leftovers)
        stats.requests_sent += realtime_stats.requests_sent
    elif leftovers:
        run.report.given_up = len(leftovers)
        for key in leftovers:
            run.answers[key] = (None, ProviderError(
                f"no answer after {settings.max_attempts} batch submission(s) (errored, expired or canceled "
                "each time)", retryable=True, hint="re-run to try again, or use --fallback realtime"))

    stats.requests_sent += run.report.submitted_items
    stats.errors += sum(1 for response, error in run.answers.values() if error is not None)
    for request in pending.values():
        stats.by_model[request.model] = stats.by_model.get(request.model, 0) + 1
    run.report.batch_ids = sorted({*run.report.reattached, *(
        r.batch_id for r in ledger.records(provider.endpoint)
        if r.batch_id and set(r.items.values()) & set(pending))})

    results = []
    for key, request in zip(keys, requests, strict=True):
        if key in cached:
            results.append(CallResult(request=request, response=cached[key], error=None, from_cache=True))
        else:
            response, error = run.answers[key]
            results.append(CallResult(request=request, response=response, error=error, from_cache=False))
    return results, stats, run.report
