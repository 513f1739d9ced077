"""Message Batches with a crash-safe ledger: each batch created exactly once, found again after any crash
or error without guessing, and failed items reconciled.

The ledger is one small JSON file per submission under ``<cache_dir>/../batches/``, plus an append-only
``journal.jsonl`` of every version of every record (from which ``evalkit cache repair`` restores a damaged
file). A record is written *before* a batch is created (state ``submitting``) and again as soon as the API
returns its id (``submitted``).

**Exactly once.** Every submission carries a run-unique marker: a nonce, recorded in the ledger before the
create call, that starts every custom_id of the batch. The create call is never retried blindly (the
SDK's retries are off for it). After it fails:

* a definite refusal (4xx: the API did not create anything) marks the record ``failed``; a 429 is tried
  again later with a new record, anything else (400, 413…) stops the run with the API's message;
* anything else (5xx, a timeout, a dropped connection — the batch may or may not exist) and a process
  that died during the call (a ``submitting`` record found by the next run) are *reconciled*: the
  workspace's batch list is searched for batches of the record's size created around its time that no
  record already owns. None: the create did not land (``never_submitted``) and the items are submitted
  again under a new marker — but only once the create has *settled* (``batch.create_settle_s`` after it
  was sent: a create still in flight at the server, e.g. of a process killed mid-call, may land late;
  until then the record keeps looking). Some: the record is ``verifying`` them; its items are not
  submitted again, and
  each candidate is polled like an own batch. When one ends, the first line of its results says whose it
  is: the record's custom_ids (with its nonce) make it ours and it is collected; anything else is
  somebody else's batch, never read further, never cancelled, never adopted.
* a record that concluded ``never_submitted`` after an error is watched while the run waits: should its
  batch turn up in the list later after all (and prove ours by its marker), its answers are used and any
  batch this run created since for the same requests is cancelled, so its unprocessed items are not
  billed.

Results are written to the response cache line by line as they are read, then the record becomes
``collected`` with each item's outcome; errored / expired / canceled items are resubmitted up to
``batch.max_attempts`` submissions, then finished in real time (``--fallback realtime``) or reported.

Submission happens under a file lock, so two evalkit processes sharing a cache never submit the same
request twice: the second one finds the first one's batch and waits for it. With the shared store
(``store = "postgresql://…"``) the records and the journal are rows of the store, and submission also
holds the store's ``batch-submit`` claim: runners on different machines (or with different cache folders)
that start the same task at the same moment submit its batch once; the others find the record and wait
for that batch. A runner that dies holding the claim stops renewing it, and it expires.

A damaged or foreign-looking record file stops the run with the file and the fix; it is never skipped
(skipping it would pay for its batch again).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock

from evalkit._hashing import digest
from evalkit._io import atomic_write_json, private_dir
from evalkit.config import BatchSettings
from evalkit.errors import AuthError, BatchPendingError, ModelNotFoundError, ProviderError, StateError
from evalkit.progress import NullProgress, Progress, duration, eta
from evalkit.prompts.render import ModelRequest
from evalkit.providers.base import BatchInfo, ModelResponse, Provider
from evalkit.providers.execute import (
    CallResult,
    ExecutionStats,
    backoff_s,
    cache_prefix,
    execute_realtime,
    partition,
)
from evalkit.providers.response_cache import ResponseCache, disk_full
from evalkit.store import PostgresStore

LEDGER_SCHEMA = 1
STATES = ("submitting", "submitted", "verifying", "collected", "never_submitted", "failed", "unresolved")
#: Errors worth another submission; anything else (invalid request, unknown model) fails the same way again.
RETRYABLE_ERROR_TYPES = frozenset({"api_error", "overloaded_error", "rate_limit_error", "timeout_error"})
RECORD_FILE = re.compile(r"^[0-9a-f]{32}\.json$")
JOURNAL = "journal.jsonl"
#: Where a create may have landed relative to the record's time (clocks differ; creates take a while).
WINDOW_BEFORE, WINDOW_AFTER = timedelta(minutes=2), timedelta(minutes=10)
LEDGER_FIX = ("run `evalkit cache repair` (it restores the record from the ledger's journal, or, if it "
              "cannot, sets it aside and tells you what to check); never delete a record by hand: its "
              "batch would be paid for again")
Fallback = Literal["none", "realtime"]
log = logging.getLogger(__name__)


@dataclass
class LedgerRecord:
    """One batch submission, as persisted."""

    record_id: str
    endpoint: str
    state: str  # one of STATES
    created_at: str
    attempt: int
    items: dict[str, str]  # custom_id -> response-cache key
    batch_id: str | None = None
    outcomes: dict[str, str] = field(default_factory=dict)  # custom_id -> outcome, once collected
    schema: int = LEDGER_SCHEMA
    nonce: str = ""  # the run-unique marker every custom_id of the batch starts with
    warmup: bool = False  # the prompt-cache warm-up batch
    candidates: list[str] = field(default_factory=list)  # batches that may be this record's (verifying)
    error: str | None = None  # why the create call failed, if it did
    task: str = ""  # the task whose run submitted it (for `evalkit status`)
    models: dict[str, int] = field(default_factory=dict)  # model -> requests in the batch

    @property
    def open(self) -> bool:
        return self.state in ("submitting", "submitted", "verifying")


_FIELDS = {f.name: f for f in fields(LedgerRecord)}
_REQUIRED = {"record_id", "endpoint", "state", "created_at", "attempt", "items"}


def _check_record(data: Any) -> str | None:
    """What is wrong with a parsed record file, or None."""
    if not isinstance(data, dict):
        return f"expected a JSON object, found {type(data).__name__}"
    unexpected = sorted(set(data) - set(_FIELDS))
    if unexpected:
        return f"unexpected keys {', '.join(unexpected)} (written by another program or evalkit version?)"
    missing = sorted(_REQUIRED - set(data))
    if missing:
        return f"missing keys {', '.join(missing)}"
    if data.get("schema", LEDGER_SCHEMA) != LEDGER_SCHEMA:
        return f"ledger schema {data.get('schema')!r}, this evalkit reads {LEDGER_SCHEMA}"
    if data["state"] not in STATES:
        return f"unknown state {data['state']!r}"
    items = data["items"]
    if not isinstance(items, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in items.items()):
        return "items must map custom_ids to cache keys"
    if data["state"] in ("submitted", "collected") and not isinstance(data.get("batch_id"), str):
        return f"state {data['state']} without a batch_id"
    for name in ("record_id", "endpoint", "created_at"):
        if not isinstance(data[name], str):
            return f"{name} must be a string"
    try:
        datetime.fromisoformat(data["created_at"])
    except ValueError:
        return f"created_at {data['created_at']!r} is not a time"
    if not isinstance(data.get("candidates", []), list) or not isinstance(data.get("outcomes", {}), dict):
        return "candidates must be a list and outcomes an object"
    return None


class _SharedSubmitLock:
    """The local submit lock, then the store's ``batch-submit`` claim (every machine's runners)."""

    NAME = "batch-submit"

    def __init__(self, local: FileLock, store: PostgresStore) -> None:
        self.local, self.store = local, store

    def __enter__(self) -> _SharedSubmitLock:
        self.local.acquire()
        try:
            self.store.claim(self.NAME)
        except BaseException:
            self.local.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.store.release(self.NAME)
        finally:
            self.local.release()


class BatchLedger:
    def __init__(self, directory: Path, store: PostgresStore | None = None) -> None:
        self.directory = directory
        self.store = store
        #: Where the records are, for messages: the folder, or the shared store (redacted URL).
        self.location: Path | str = store.redacted if store is not None else directory
        try:
            private_dir(self.directory)
        except OSError as exc:
            raise StateError(f"cannot create the batch ledger folder {directory}: {exc.strerror or exc}",
                             path=directory, hint="make the folder writable, or move cache_dir") from None

    def lock(self) -> AbstractContextManager[object]:
        local = FileLock(str(self.directory / ".submit.lock"))
        return local if self.store is None else _SharedSubmitLock(local, self.store)

    def path(self, record_id: str) -> Path:
        return self.directory / f"{record_id}.json"

    def _where(self, record_id: str) -> str:
        return f"{self.location} batch ledger record {record_id}"

    def write(self, record: LedgerRecord) -> None:
        """Journal first, then the record file: whatever happens, one of them holds the latest state."""
        data = asdict(record)
        if self.store is not None:  # one transaction holds both
            self.store.write_batch_record(record.record_id, record.endpoint, record.state,
                                          json.dumps(data, sort_keys=True), digest(data))
            return
        line = json.dumps({"sha256": digest(data), "record": data}, sort_keys=True) + "\n"
        try:
            fd = os.open(self.directory / JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            atomic_write_json(self.path(record.record_id), data)
        except OSError as exc:
            full = disk_full(exc)
            raise StateError(
                f"cannot write the batch ledger record {self.path(record.record_id)}: "
                + ("the disk is full" if full else str(exc.strerror or exc)),
                path=self.path(record.record_id),
                hint=("free some space, then run the same command again: the ledger's journal keeps the "
                      "batch it describes, so nothing is paid again" if full else LEDGER_FIX)) from None

    def _load(self, path: Path) -> LedgerRecord:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise StateError(f"{path}: damaged batch ledger record (not UTF-8 text)", path=path,
                             hint=LEDGER_FIX) from None
        except OSError as exc:
            raise StateError(f"cannot read the batch ledger record {path}: {exc.strerror}", path=path,
                             hint=LEDGER_FIX) from None
        return self._parse(path, text)

    def _parse(self, path: Path | str, text: str) -> LedgerRecord:
        try:
            data = json.loads(text)
        except ValueError as exc:
            line = getattr(exc, "lineno", None)
            raise StateError(f"{path}{f':{line}' if line else ''}: damaged batch ledger record "
                             f"(not valid JSON: {getattr(exc, 'msg', exc)})", path=path,
                             hint=LEDGER_FIX) from None
        problem = _check_record(data)
        if problem is not None:
            raise StateError(f"{path}: damaged batch ledger record ({problem})", path=path, hint=LEDGER_FIX)
        return LedgerRecord(**data)

    def record_files(self) -> list[Path]:
        return sorted(p for p in self.directory.glob("*.json") if RECORD_FILE.match(p.name))

    def record_ids(self) -> list[str]:
        if self.store is not None:
            return [record_id for record_id, _ in self.store.batch_records()]
        return [p.stem for p in self.record_files()]

    def records(self, endpoint: str) -> list[LedgerRecord]:
        """Every record for ``endpoint``; any damaged record file (whatever its endpoint) is an error."""
        if self.store is not None:
            loaded = [self._parse(self._where(rid), text) for rid, text in self.store.batch_records()]
        else:
            loaded = list(map(self._load, self.record_files()))
        return [r for r in loaded if r.endpoint == endpoint]

    def read(self, record_id: str) -> LedgerRecord:
        if self.store is not None:
            text = self.store.batch_record(record_id)
            if text is None:
                raise StateError(f"{self._where(record_id)} is not in the store", path=self.location,
                                 hint=LEDGER_FIX)
            return self._parse(self._where(record_id), text)
        return self._load(self.path(record_id))

    # -- verify / repair -----------------------------------------------------------------------------
    def journal(self) -> dict[str, dict[str, Any]]:
        """The latest intact version of every record in the journal."""
        latest: dict[str, dict[str, Any]] = {}
        if self.store is not None:
            for record_id, sha256, text in self.store.batch_journal():
                try:
                    record = json.loads(text)
                except ValueError:
                    continue
                if digest(record) == sha256 and _check_record(record) is None:
                    latest[record_id] = record
            return latest
        path = self.directory / JOURNAL
        if not path.exists():
            return latest
        for line in path.read_bytes().splitlines():
            try:
                entry = json.loads(line)
                record = entry["record"]
                if digest(record) != entry["sha256"] or _check_record(record) is not None:
                    continue
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line, or damage: older versions are still there
            latest[record["record_id"]] = record
        return latest

    def verify(self) -> list[tuple[Path | str, str]]:
        """(file, problem) for each damaged record file."""
        problems: list[tuple[Path | str, str]] = []
        if self.store is not None:
            for record_id, text in self.store.batch_records():
                try:
                    self._parse(self._where(record_id), text)
                except StateError as error:
                    problems.append((record_id, error.message))
            return problems
        for path in self.record_files():
            try:
                self._load(path)
            except StateError as error:
                problems.append((path, error.message))
        return problems

    def repair(self) -> list[str]:
        """Restore each damaged record from the journal; set aside (never delete) what cannot be restored.
        Returns what was done, one line per record."""
        done = []
        journal = self.journal()
        if self.store is not None:
            for record_id, _problem in self.verify():
                found = journal.get(str(record_id))
                if found is None:
                    done.append(f"{self._where(str(record_id))} is damaged and the journal has no intact "
                                "copy; it is left in place (a re-run stops on it): check its batch in the "
                                "Console (Message Batches)")
                    continue
                self.store.restore_batch_record(str(record_id), found["endpoint"], found["state"],
                                                json.dumps(found, sort_keys=True))
                done.append(f"restored {self._where(str(record_id))} from the journal "
                            f"(state {found['state']})")
            return done
        for file, _problem in self.verify():
            path = Path(file)
            record = journal.get(path.stem)
            if record is not None:
                atomic_write_json(path, record)
                done.append(f"restored {path} from the journal (state {record['state']}"
                            + (f", batch {record['batch_id']})" if record.get("batch_id") else ")"))
                continue
            aside = private_dir(self.directory / "damaged") / path.name
            os.replace(path, aside)
            done.append(f"set {path} aside as {aside}: the journal has no intact copy. If it described a "
                        "batch, that batch is in the Console (Message Batches) and may hold answers already "
                        "paid for; a re-run submits its requests again")
        return done


def custom_id_for(request: ModelRequest, key: str, nonce: str = "") -> str:
    """A readable, valid (``^[a-zA-Z0-9_-]{1,64}$``), unique custom_id: the submission's marker, role,
    sample id, key prefix."""
    sample = re.sub(r"[^a-zA-Z0-9_-]", "_", request.sample_id)[:32 if nonce else 36]
    body = f"{request.role[0]}{request.replicate}-{sample}-{key[:16]}"
    return f"{nonce}-{body}" if nonce else body


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
    create_errors: int = 0  # create calls that failed (the batch then found by its marker, or not created)
    verified: list[str] = field(default_factory=list)  # batches proved this run's by their marker
    not_ours: list[str] = field(default_factory=list)  # candidates that proved somebody else's: untouched
    canceled_duplicates: list[str] = field(default_factory=list)  # own batches cancelled as duplicates
    duplicate_items: int = 0  # requests answered by two of evalkit's own batches: billed twice, counted

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
        self.create_errors += other.create_errors
        self.verified = sorted({*self.verified, *other.verified})
        self.not_ours = sorted({*self.not_ours, *other.not_ours})
        self.canceled_duplicates = sorted({*self.canceled_duplicates, *other.canceled_duplicates})
        self.duplicate_items += other.duplicate_items


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _definitely_not_created(error: ProviderError) -> bool:
    """The API refused the create (nothing exists): a 4xx other than 408, or a failure before sending."""
    if error.status is not None:
        return 400 <= error.status < 500 and error.status != 408
    return not error.maybe_billed


class _BatchRun:
    def __init__(self, provider: Provider, cache: ResponseCache, ledger: BatchLedger, settings: BatchSettings,
                 progress: Progress, sleep: Callable[[float], Awaitable[None]], label: str = "") -> None:
        self.provider, self.cache, self.ledger, self.settings = provider, cache, ledger, settings
        self.label = label
        self.progress, self.sleep = progress, sleep
        self.report = BatchReport()
        self.answers: dict[str, tuple[ModelResponse | None, ProviderError | None]] = {}
        self.create_failures = 0
        self.last_create_error: ProviderError | None = None
        self.watched: list[LedgerRecord] = []  # concluded never_submitted after an error in this run
        self.created_here: set[str] = set()  # record ids of this run's submissions
        #: Batch ids of this run's own submissions, as they are created (see ``execute_batch``'s end).
        self.created_batches: set[str] = set()

    # -- ledger bookkeeping --------------------------------------------------------------------------
    def _attempts(self, records: list[LedgerRecord]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in records:
            if record.state in ("submitted", "collected", "submitting", "verifying"):
                for key in record.items.values():
                    counts[key] = counts.get(key, 0) + 1
        return counts

    def _owned(self) -> set[str]:
        """Batch ids some record of the ledger has proved its own (never candidates of another)."""
        return {r.batch_id for r in self.ledger.records(self.provider.endpoint) if r.batch_id}

    def _candidates(self, record: LedgerRecord, batches: list[BatchInfo], owned: set[str]) -> list[str]:
        created = datetime.fromisoformat(record.created_at)
        return [b.id for b in batches
                if b.id not in owned and b.id not in self.report.not_ours and b.total == len(record.items)
                and b.created_at is not None
                and created - WINDOW_BEFORE <= b.created_at <= created + WINDOW_AFTER]

    def _settled(self, record: LedgerRecord) -> bool:
        """Whether a create of unknown outcome is old enough that its batch would be listed by now."""
        created = datetime.fromisoformat(record.created_at)
        return datetime.now(UTC) >= created + timedelta(seconds=self.settings.create_settle_s)

    async def _reconcile(self, record: LedgerRecord, owned: set[str], *, after_error: bool) -> None:
        """The create call of ``record`` failed or its process died during it: does its batch exist?
        Candidates are verified while the run waits; with none yet, the record keeps looking until the
        create has settled (a create still in flight at the server may land late), then is absent."""
        batches = await self.provider.list_batches(limit=1000)
        found = self._candidates(record, batches, owned)
        if found:
            record.state, record.candidates = "verifying", found
            self.progress.note(f"a batch create {'failed' if after_error else 'was interrupted'}; "
                               f"{', '.join(found)} may be its batch: waiting for its results to prove it "
                               "by this run's marker (nothing else is adopted)")
        elif not self._settled(record):
            record.state, record.candidates = "verifying", []
        else:
            record.state = "never_submitted"
            self.watched.append(record)
        self.ledger.write(record)

    async def _create(self, record: LedgerRecord, chunk: list[tuple[str, dict[str, Any]]],
                      owned: set[str]) -> bool:
        """Create ``record``'s batch once. True when it exists (or may: verifying), False when not."""
        try:
            info = await self.provider.submit_batch(chunk)
        except (AuthError, ModelNotFoundError) as error:
            record.state, record.error = "failed", error.message
            self.ledger.write(record)
            raise
        except ProviderError as error:
            self.report.create_errors += 1
            self.last_create_error = error
            record.error = error.message
            if _definitely_not_created(error):
                record.state = "failed"
                self.ledger.write(record)
                if not error.retryable:
                    raise  # e.g. 400 / 413: the same batch fails the same way again
                self.create_failures += 1
                await self.sleep(backoff_s(self.create_failures - 1, error))
                return False
            self.ledger.write(record)  # still "submitting": a crash now is reconciled by the next run
            await self.sleep(self.settings.reconcile_delay_s)
            await self._reconcile(record, owned, after_error=True)
            if record.state == "never_submitted":
                self.create_failures += 1
                return False
            return True  # verifying: its batch is looked for (and proved) while the run waits
        record.batch_id, record.state = info.id, "submitted"
        self.ledger.write(record)
        log.info("submitted batch %s: %d requests (ledger record %s)", info.id, len(record.items),
                 record.record_id, extra={"batch_id": info.id})
        return True

    async def _submit(self, pending: dict[str, ModelRequest], endpoint: str, *,
                      warmup: bool = False) -> list[LedgerRecord]:
        """Under the ledger lock: re-attach to open submissions, submit what nobody has submitted."""
        with self.ledger.lock():
            records = self.ledger.records(endpoint)
            owned = {r.batch_id for r in records if r.batch_id}
            for record in records:
                if record.state == "submitting":  # a process died during its create call
                    await self._reconcile(record, owned, after_error=False)
            open_records = [r for r in records if r.state in ("submitted", "verifying")]
            in_flight = {key for r in open_records for key in r.items.values()}
            attempts = self._attempts(records)
            wanted = [key for key in pending if key not in self.answers and key not in in_flight]
            for record in open_records:
                if (set(record.items.values()) & set(pending) and record.state == "submitted"
                        and record.batch_id not in self.report.reattached):
                    self.report.reattached.append(str(record.batch_id))
                    log.info("re-attached to batch %s (%d requests, submitted %s)", record.batch_id,
                             len(record.items), record.created_at, extra={"batch_id": record.batch_id})
            submit = [key for key in wanted if attempts.get(key, 0) < self.settings.max_attempts]
            nonce = uuid.uuid4().hex[:10]
            key_of = {custom_id_for(pending[key], key, nonce): key for key in submit}
            items = [(custom_id, pending[key].params) for custom_id, key in key_of.items()]
            new_records = []
            for chunk in chunk_items(items, self.settings):
                keys = {custom_id: key_of[custom_id] for custom_id, _ in chunk}
                attempt = 1 + max(attempts.get(key, 0) for key in keys.values())
                models = Counter(pending[key].model for key in keys.values())
                record = LedgerRecord(record_id=uuid.uuid4().hex, endpoint=endpoint, state="submitting",
                                      created_at=_stamp(datetime.now(UTC)), attempt=attempt, items=keys,
                                      nonce=nonce, warmup=warmup, task=self.label, models=dict(models))
                self.ledger.write(record)  # before the create call: a crash here is resolvable
                self.created_here.add(record.record_id)
                if not await self._create(record, chunk, owned):
                    continue
                self.report.submitted_items += len(chunk)
                self.report.resubmitted_items += sum(1 for key in keys.values() if attempts.get(key, 0) > 0)
                if record.batch_id:
                    self.created_batches.add(record.batch_id)
                new_records.append(record)
            return [r for r in open_records if set(r.items.values()) & set(pending)] + new_records

    @property
    def create_retry_left(self) -> bool:
        return 0 < self.create_failures <= self.settings.create_retries

    # -- polling and collection ----------------------------------------------------------------------
    async def _collect(self, record: LedgerRecord, batch_id: str, wanted: dict[str, ModelRequest],
                       *, verify: bool = False) -> bool:
        """Read ``batch_id``'s results into the cache. With ``verify``, the first line decides whether the
        batch is ``record``'s (its marker): if not, nothing is read further and False is returned."""
        first = True
        async for item in self.provider.batch_results(batch_id):
            key = record.items.get(item.custom_id)
            if first and verify and key is None:
                return False  # somebody else's batch: not one of its lines is ours
            first = False
            if key is None:
                continue
            record.outcomes[item.custom_id] = item.outcome
            if item.outcome == "succeeded" and item.message is not None:
                response = ModelResponse(message=item.message, simulated=self.provider.simulated,
                                         mode="batch", batch_id=batch_id)
                previous = self.answers.get(key)
                if previous is not None and previous[0] is not None:
                    self.report.duplicate_items += 1  # answered by two of our batches: billed twice
                    continue
                self.cache.put_key(key, response)
                if key in wanted:
                    self.answers[key] = (response, None)
                    self.progress.advance()
            elif key in self.answers and self.answers[key][0] is not None:
                continue  # already answered by another batch (e.g. a cancelled duplicate)
            else:
                self.report.failed_items[item.outcome] = self.report.failed_items.get(item.outcome, 0) + 1
                if (item.outcome == "errored" and item.error_type not in RETRYABLE_ERROR_TYPES
                        and key in wanted):
                    # Resubmitting cannot help (e.g. invalid_request_error): final.
                    self.answers[key] = (None, ProviderError(
                        f"batch {batch_id} item {item.custom_id} errored: {item.error_type}: "
                        f"{item.error_message}", error_type=item.error_type, request_id=item.request_id))
                    self.progress.advance()
        if first and verify:
            return False
        for custom_id in record.items:
            record.outcomes.setdefault(custom_id, "missing")
        record.batch_id, record.state, record.candidates = batch_id, "collected", []
        self.ledger.write(record)
        tally: dict[str, int] = {}
        for outcome in record.outcomes.values():
            tally[outcome] = tally.get(outcome, 0) + 1
        log.info("collected batch %s: %s", record.batch_id, ", ".join(f"{n} {o}" for o, n in tally.items()),
                 extra={"batch_id": record.batch_id})
        return True

    async def _cancel_duplicates(self, adopted: LedgerRecord, waiting: dict[str, LedgerRecord]) -> None:
        """Once a late-found batch proved ours, cancel the batches this run created since whose every
        request it answers: their unprocessed items are then not billed."""
        answered = {key for key, (response, _) in self.answers.items() if response is not None}
        for batch_id, record in list(waiting.items()):
            if (record is not adopted and record.state == "submitted" and record.batch_id == batch_id
                    and set(record.items.values()) <= answered | set(adopted.items.values())):
                await self.provider.cancel_batch(batch_id)
                self.report.canceled_duplicates.append(batch_id)
                self.progress.note(f"cancelled batch {batch_id}: its requests were answered by "
                                   f"{adopted.batch_id}, the batch of an earlier create that had failed")

    async def _look_for_late_batches(self, waiting: dict[str, LedgerRecord],
                                     looking: list[LedgerRecord]) -> None:
        """Creates of unknown outcome (``looking``: no candidate yet) and creates concluded absent after an
        error (watched) may still show up in the list: look again while waiting. A record that has
        settled without a candidate is concluded absent; its requests are then submitted again."""
        now = datetime.now(UTC)
        self.watched = [r for r in self.watched if r.state == "never_submitted"
                        and now <= datetime.fromisoformat(r.created_at) + WINDOW_AFTER]
        if not self.watched and not looking:
            return
        batches = await self.provider.list_batches(limit=1000)
        owned = self._owned() | set(waiting)
        for record in [*looking, *self.watched]:
            found = self._candidates(record, batches, owned)
            if found:
                record.state, record.candidates = "verifying", found
                self.ledger.write(record)
                for batch_id in found:
                    waiting[batch_id] = record
            elif record in looking and self._settled(record):
                record.state = "never_submitted"
                self.ledger.write(record)
                self.watched.append(record)

    async def _poll(self, batch_id: str) -> BatchInfo | None:
        """The batch's status; None when this look failed in a way worth another look (it is free)."""
        try:
            return await self.provider.get_batch(batch_id)
        except (AuthError, ModelNotFoundError):
            raise
        except ProviderError as error:
            if error.retryable:
                return None
            raise

    async def _wait(self, records: list[LedgerRecord], wanted: dict[str, ModelRequest],
                    deadline: float | None, started: float) -> None:
        waiting: dict[str, LedgerRecord] = {str(r.batch_id): r for r in records if r.state == "submitted"}
        for record in records:
            if record.state == "verifying":
                waiting.update({batch_id: record for batch_id in record.candidates})
        delay = self.settings.poll_initial_s
        last_label = ""
        failures = 0

        def looking() -> list[LedgerRecord]:
            return [r for r in records if r.state == "verifying" and not set(r.candidates) & set(waiting)]

        while waiting or looking():
            infos: list[BatchInfo] = []
            for batch_id, record in list(waiting.items()):
                if batch_id not in waiting:
                    continue  # dropped meanwhile (another candidate of the same record proved ours)
                info = await self._poll(batch_id)
                if info is None:
                    failures += 1
                    if failures > 50:
                        raise ProviderError(f"cannot get the status of batch {batch_id}: the API keeps "
                                            "failing", retryable=True,
                                            hint="run the same command again later: nothing is lost")
                    continue
                infos.append(info)
                if not info.ended:
                    continue
                try:
                    await self._finish(batch_id, record, wanted, waiting)
                except ProviderError as error:
                    if not error.retryable or isinstance(error, AuthError | ModelNotFoundError):
                        raise
                    failures += 1  # the results could not be read this time: read them again next time
                    if failures > 50:
                        raise
            await self._look_for_late_batches(waiting, looking())
            label = _status_label(infos, time.monotonic() - started)
            if label != last_label:
                self.progress.update(label)
                last_label = label
            if not waiting and not looking():
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                done = sum(1 for key in wanted if key in self.answers)
                what = (f"batch{'es' if len(waiting) > 1 else ''} {', '.join(map(str, waiting))} still "
                        "processing" if waiting else "a batch create whose outcome is not known yet")
                raise BatchPendingError(
                    f"{what} after the --max-wait of {deadline - started:.0f} s ({done} of {len(wanted)} "
                    "answers in); nothing is lost: run the same command again to pick up the results "
                    "(nothing is resubmitted)",
                    batch_ids=[str(b) for b in waiting],
                )
            pause = delay if deadline is None else min(delay, max(deadline - now, 0.01))
            await self.sleep(pause)
            self.report.poll_seconds += pause
            delay = min(delay * 1.5, self.settings.poll_max_s)

    async def _finish(self, batch_id: str, record: LedgerRecord, wanted: dict[str, ModelRequest],
                      waiting: dict[str, LedgerRecord]) -> None:
        """An ended batch: collect an own one; verify a candidate by its marker first."""
        if record.state != "verifying":
            await self._collect(record, batch_id, wanted)
            del waiting[batch_id]
            return
        late = record in self.watched
        if await self._collect(record, batch_id, wanted, verify=True):
            for other in record.candidates:
                waiting.pop(other, None)  # the others are somebody else's: never touched
            waiting.pop(batch_id, None)
            self.report.verified.append(batch_id)
            if record.record_id not in self.created_here and batch_id not in self.report.reattached:
                self.report.reattached.append(batch_id)  # created by an earlier, interrupted run
            if late:
                await self._cancel_duplicates(record, waiting)
            return
        del waiting[batch_id]
        self.report.not_ours.append(batch_id)
        record.candidates = [c for c in record.candidates if c != batch_id]
        if not record.candidates and self._settled(record):
            record.state = "never_submitted"  # no batch of the workspace carries its marker
            self.watched.append(record)
        self.ledger.write(record)


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


def _needs_warmup(records: list[LedgerRecord], pending: dict[str, ModelRequest]) -> bool:
    """Warm up unless the main submission of these requests already happened (a warm-up that crashed,
    failed or never landed does not count), or a warm-up batch ended within the cache's hour."""
    main = {key for r in records if not r.warmup and r.state in ("submitting", "submitted", "verifying",
                                                                 "collected") for key in r.items.values()}
    if main & set(pending):
        return False
    fresh = datetime.now(UTC) - timedelta(minutes=50)
    return not any(r.warmup and r.state == "collected" and datetime.fromisoformat(r.created_at) > fresh
                   for r in records)


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
    max_retries: int = 0,
    label: str = "",
    detach: bool = False,
) -> tuple[list[CallResult], ExecutionStats, BatchReport]:
    """Answer every request from the cache or through Message Batches (see the module docstring).

    ``label`` names the task in the ledger (``evalkit status``). ``detach``: return (BatchPendingError)
    as soon as the main batch is submitted; a later run collects it. A warm-up batch is waited for
    first, so the main batch can still read the cache it writes."""
    progress = progress or NullProgress()
    if not provider.supports_batch:
        raise ProviderError(f"{provider.endpoint} does not support Message Batches",
                            hint="use --mode realtime")
    stats = ExecutionStats()
    keys, cached, pending = partition(requests, provider.endpoint, cache, stats)

    if pending:
        await preflight(provider, list(pending.values()))
    run = _BatchRun(provider, cache, ledger, settings, progress, sleep, label)
    started = time.monotonic()
    deadline = started + max_wait_s if max_wait_s is not None else None
    if pending:
        progress.start("batch", total=len(pending))
        try:
            if warmup and _needs_warmup(ledger.records(provider.endpoint), pending):
                # The documented recipe: one request per prefix writes the 1 h cache, then the rest read it.
                first: dict[tuple[str, str], str] = {}
                for key, request in pending.items():
                    first.setdefault(cache_prefix(request), key)
                if len(first) < len(pending):
                    warm = {key: pending[key] for key in first.values()}
                    progress.update(f"batch: warm-up ({len(warm)} request(s) write the prompt cache)")
                    while True:
                        records = await run._submit(warm, provider.endpoint, warmup=True)
                        if records or not run.create_retry_left:
                            break
                    await run._wait(records, warm, None if detach else deadline, started)
                    run.report.warmup_items = len(warm)
            if detach:  # give up waiting at the first look after the main submission
                deadline = time.monotonic()
            while True:
                unanswered = {k: r for k, r in pending.items() if k not in run.answers}
                if not unanswered:
                    break
                records = await run._submit(unanswered, provider.endpoint)
                if not records:
                    if run.create_retry_left:
                        continue  # a create failed before any batch existed: try again
                    if run.create_failures and run.last_create_error is not None:
                        last = run.last_create_error
                        raise ProviderError(
                            f"could not create a batch ({run.create_failures} attempts): {last.message}",
                            status=last.status, error_type=last.error_type, retryable=True,
                            hint="run the same command again later: every batch that was created is in "
                                 "the ledger and is picked up, nothing is paid twice")
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
                                                         label="realtime fallback", max_retries=max_retries,
                                                         sleep=sleep)
        for key, result in zip(leftovers, results, strict=True):
            run.answers[key] = (result.response, result.error)
        run.report.fallback_realtime = len(leftovers)
        stats.requests_sent += realtime_stats.requests_sent
        stats.retries += realtime_stats.retries
        stats.possibly_billed_twice += realtime_stats.possibly_billed_twice
        stats.timeouts += realtime_stats.timeouts
        stats.shared += realtime_stats.shared
        fallback_calls = {request_key: result for request_key, result in zip(leftovers, results, strict=True)}
    else:
        fallback_calls = {}
        if leftovers:
            run.report.given_up = len(leftovers)
            for key in leftovers:
                run.answers[key] = (None, ProviderError(
                    f"no answer after {settings.max_attempts} batch submission(s) (errored, expired or "
                    "canceled each time)", retryable=True, hint="re-run to try again, or use --fallback "
                                                                 "realtime"))

    stats.requests_sent += run.report.submitted_items
    stats.errors += sum(1 for response, error in run.answers.values() if error is not None)
    for request in pending.values():
        stats.by_model[request.model] = stats.by_model.get(request.model, 0) + 1
    # What this run created, re-attached to or verified as its own — known as it went: re-reading the
    # whole ledger here parsed every record's items (~40 MB of JSON at 100k samples, and every earlier
    # run's records) while all the answers were held, the run's memory peak.
    run.report.batch_ids = sorted({*run.report.reattached, *run.report.verified, *run.created_batches})

    results = []
    for key, request in zip(keys, requests, strict=True):
        if key in cached:
            results.append(CallResult(request=request, response=cached[key], error=None, from_cache=True))
        else:
            response, error = run.answers[key]
            maybe = fallback_calls[key].maybe_billed if key in fallback_calls else 0
            results.append(CallResult(request=request, response=response, error=error, from_cache=False,
                                      maybe_billed=maybe))
            fallback_calls.pop(key, None)  # an identical request shares the call, not its count
    return results, stats, run.report
