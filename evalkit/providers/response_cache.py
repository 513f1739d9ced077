"""The response cache: every paid answer is stored, so nothing is ever paid for twice.

Backed by diskcache (SQLite, safe across processes) with JSON values, not pickles. The key is a sha256
over canonical JSON of the cache schema version, the endpoint identity (real API vs simulator never
mix), the exact request body, and the replicate index. Nothing secret is part of the key or the value:
API keys live only in the HTTP client.

Every value carries the sha256 of its content, checked on every read: a damaged entry or a damaged
``cache.db`` stops the run with the file and the fix (``evalkit cache verify`` / ``evalkit cache repair``)
instead of being taken for a miss and paid for again. Values written before checksums (format 1) are
read as they are.

Beside the store, ``claims/`` holds one lock per request being fetched (:class:`Claim`), so processes
that share the cache share the work, and in-flight marks of attempts whose outcome is not known yet.

The cache folder is owner-only (0700), like everything evalkit keeps (see docs/reliability.md).

**The shared store.** With ``store = "postgresql://…"`` (:mod:`evalkit.store`) the values live in the
store's ``evalkit_responses`` table instead of ``cache.db`` — same keys, same checksummed values — so one
machine's paid answer is every machine's cache hit. A request is then fetched under two claims: the local
file lock (processes of this machine) and a claim row in the store (every machine), which expires when its
runner dies. The in-flight marks and tallies stay in the local ``claims/`` folder.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import sqlite3
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import diskcache
from filelock import FileLock, Timeout

from evalkit._hashing import digest
from evalkit._io import atomic_write_text, pid_alive, private_dir, private_file
from evalkit.config import Settings
from evalkit.errors import CacheError, StateError
from evalkit.prompts.prompt_caching import media_tokens
from evalkit.prompts.render import ModelRequest
from evalkit.providers.base import ModelResponse
from evalkit.store import PostgresStore, open_store
from evalkit.tokens import count_tokens

#: Part of every key. Bump only when keys must change; the value format has its own version below.
CACHE_SCHEMA = 1
#: Version of the stored value: 2 wraps the response with its sha256.
VALUE_FORMAT = 2

CacheMode = Literal["use", "read-only", "refresh", "off"]
CACHE_MODES: tuple[CacheMode, ...] = ("use", "read-only", "refresh", "off")
#: Stripes of claim locks (the first hex digits of the key): a bounded number of lock files.
CLAIM_STRIPE_DIGITS = 3
REPAIR_HINT = ("run `evalkit cache verify` to list what is damaged, then `evalkit cache repair` (it keeps "
               "every readable answer and says what a re-run would pay for again)")
#: What SQLite and zlib raise for a damaged database or value.
_DAMAGE = (sqlite3.DatabaseError, zlib.error, ValueError, UnicodeDecodeError, KeyError, TypeError)


def request_key(endpoint: str, request: ModelRequest) -> str:
    # Memoised on the request: hashing the canonical JSON of a full request body is the main cost of a
    # fully cached tuning session, and every stage asks for the same keys. One (endpoint, key) pair is
    # kept (a run has one endpoint); another endpoint's key is computed and replaces it.
    memo = request.key_memo
    if memo is None or memo[0] != endpoint:
        if request.is_released:
            raise ValueError(f"the key of a released request for another endpoint ({endpoint}) is unknown")
        memo = (endpoint, digest({"schema": CACHE_SCHEMA, "endpoint": endpoint, "params": request.params,
                                  "replicate": request.replicate}))
        object.__setattr__(request, "key_memo", memo)
    return memo[1]


def wrap(response: ModelResponse) -> dict[str, Any]:
    payload = response.to_cache()
    return {"format": VALUE_FORMAT, "sha256": digest(payload), "value": payload}


def unwrap(value: Any) -> ModelResponse:
    """The response in a stored value; raises ValueError when it is damaged."""
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, found {type(value).__name__}")
    if value.get("format") == VALUE_FORMAT:
        payload = value.get("value")
        if digest(payload) != value.get("sha256"):
            raise ValueError("its content does not match its sha256 checksum")
    elif "message" in value:  # format 1, written before checksums
        payload = value
    else:
        raise ValueError(f"unknown value format {value.get('format')!r}")
    if not isinstance(payload, dict) or not isinstance(payload.get("message"), dict):
        raise ValueError("it holds no Messages API message")
    return ModelResponse.from_cache(payload)


def disk_full(exc: BaseException) -> bool:
    return (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) or (
        isinstance(exc, sqlite3.OperationalError) and "full" in str(exc))


def read_only_disk(exc: BaseException) -> bool:
    return (isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)) or (
        isinstance(exc, sqlite3.OperationalError)
        and "readonly" in str(exc).replace("-", "").replace(" ", ""))


@dataclass(frozen=True)
class Attempted:
    """Attempts at one request that may have been billed without their answer reaching any run's report."""

    key: str
    count: int
    model: str
    input_tokens: int
    max_tokens: int

    @classmethod
    def read(cls, path: Path) -> Attempted | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(key=str(data["key"]), count=int(data["count"]), model=str(data["model"]),
                       input_tokens=int(data["input_tokens"]), max_tokens=int(data["max_tokens"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None


class Claim:
    """The right to fetch one request's answer, held by one process (and one task in it) at a time.

    A file lock (``flock``) in ``claims/``: the OS drops it when its process dies, so a claim never
    outlives its process, whatever killed it. Keys share lock files by their first hex digits, so the
    folder stays small; a shared stripe only makes one request wait for another now and then.

    What may have been paid twice is written down where a kill cannot erase it:

    * ``<key>.inflight`` (``mark``) says, before every attempt, how many attempts at this request may have
      been billed without an answer (the one going out included). It goes when the outcome is known. A
      mark the next holder of the claim finds was left by a process that died: that many attempts may
      have been billed, and the next send may pay again.
    * ``<key>.<pid>.tally`` (``tally``) keeps the count of an answered request whose earlier attempts may
      have been billed, until its run's report (which counts them) is written; a run that finds the tally
      of a dead process counts it instead (:meth:`ResponseCache.adopt_orphans`).
    """

    def __init__(self, folder: Path | None, key: str) -> None:
        self.key = key
        self._folder = folder
        self._lock = FileLock(str(folder / f"{key[:CLAIM_STRIPE_DIGITS]}.lock")) if folder else None
        self._mark = folder / f"{key}.inflight" if folder else None
        self._ours = False  # the mark is this holder's (not an orphan)

    def try_acquire(self) -> bool:
        if self._lock is None:
            return True
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        return True

    async def acquire(self, poll_s: float = 0.05) -> None:
        while not self.try_acquire():
            await asyncio.sleep(poll_s)

    def release(self) -> None:
        if self._lock is not None and self._lock.is_locked:
            self._lock.release()

    def orphaned_attempts(self) -> int:
        """Attempts a process that died while holding this claim may have had billed (0: none)."""
        if self._mark is None or self._ours or not self._mark.exists():
            return 0
        found = Attempted.read(self._mark)
        return max(found.count, 1) if found else 1

    def _write(self, path: Path, count: int, request: ModelRequest) -> None:
        params = request.params
        data = {"key": self.key, "count": count, "pid": os.getpid(), "model": request.model,
                "input_tokens": count_tokens(str(params.get("system") or ""))
                + count_tokens(str(params.get("messages") or "")) + sum(media_tokens(params)) + 8,
                "max_tokens": int(params.get("max_tokens") or 0),
                "time": datetime.now(UTC).isoformat(timespec="seconds")}
        try:
            atomic_write_text(path, json.dumps(data) + "\n", durable=False)  # a kill, not a power cut
        except OSError as exc:
            raise _write_error(path, exc) from None

    def mark(self, count: int, request: ModelRequest) -> None:
        """``count`` attempts may have been billed without an answer (0 clears the mark)."""
        if self._mark is None:
            return
        if count <= 0:
            self._mark.unlink(missing_ok=True)
        else:
            self._write(self._mark, count, request)
        self._ours = True

    def answered(self, earlier: int, request: ModelRequest) -> None:
        """The answer is cached; ``earlier`` attempts before it may have been billed as well."""
        if self._folder is not None and self._mark is not None:
            if earlier > 0:
                self._write(self._folder / f"{self.key}.{os.getpid()}.tally", earlier, request)
            self._mark.unlink(missing_ok=True)


class StoreClaim(Claim):
    """A :class:`Claim` that also holds the request's claim row in the shared store: no two machines fetch
    the same request at once. The local lock is taken first (cheap, and keeps this machine's processes off
    the store), then the store's; a runner that dies leaves a claim row that expires."""

    def __init__(self, folder: Path, key: str, store: PostgresStore) -> None:
        super().__init__(folder, key)
        self._store = store
        self._name = f"answer:{key}"

    def try_acquire(self) -> bool:
        if not super().try_acquire():
            return False
        if self._store.try_claim(self._name):
            return True
        super().release()
        return False

    def release(self) -> None:
        if self._store.holds(self._name):
            self._store.release(self._name)
        super().release()


class _StoreValues:
    """The store's ``evalkit_responses`` table behind the part of diskcache's interface the cache uses."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    def get(self, key: str) -> Any:
        text = self.store.get_response(key)
        return None if text is None else json.loads(text)

    def set(self, key: str, value: Any) -> None:
        self.store.put_response(key, json.dumps(value, separators=(",", ":")))

    def delete(self, key: str) -> None:
        self.store.delete_response(key)

    def iterkeys(self) -> list[str]:
        return self.store.response_keys()

    def __len__(self) -> int:
        return self.store.count_responses()

    def close(self) -> None:
        pass  # the store's connection is shared by the process


def _write_error(path: Path, exc: BaseException) -> StateError:
    if disk_full(exc):
        return StateError(f"the disk holding {path} is full: evalkit cannot store what it was paid for",
                          path=path, hint="free some space (or move cache_dir in evalkit.toml), then run the "
                                          "same command again: every answer stored so far is kept")
    if read_only_disk(exc):
        return StateError(f"cannot write {path}: the file system or folder is read-only for this user",
                          path=path, hint="make it writable, or set cache_dir in evalkit.toml / "
                                          "EVALKIT_CACHE_DIR to a writable folder")
    return StateError(f"cannot write {path}: {exc}", path=path, hint=REPAIR_HINT)


@dataclass
class VerifyReport:
    """What ``evalkit cache verify`` found in the response cache."""

    database: Path | str  # cache.db, or the shared store (its redacted URL)
    entries: int = 0
    checksummed: int = 0
    legacy: int = 0  # format 1: no checksum to check
    damaged: list[str] = field(default_factory=list)  # keys whose value cannot be read or does not match
    unreadable: str | None = None  # the database itself cannot be read: why

    @property
    def ok(self) -> bool:
        return not self.damaged and self.unreadable is None


class ResponseCache:
    """Stores :class:`ModelResponse` values by request key. Errors are never cached."""

    def __init__(self, directory: Path, mode: CacheMode = "use", *,
                 store: PostgresStore | None = None) -> None:
        if mode not in CACHE_MODES:
            raise CacheError(f"unknown cache mode '{mode}'", hint=f"use one of {', '.join(CACHE_MODES)}")
        self.directory = directory
        self.mode: CacheMode = mode
        self.shared = store
        self.database: Path | str = directory / "responses" / "cache.db"
        self.claims_dir = directory / "claims"
        #: Answers read ahead (``get_key(keep=True)``: the cost estimate), handed once to the next reader
        #: of the same key (the executor), so a cached re-run reads and checks each value once, not twice.
        self._read_ahead: dict[str, ModelResponse] = {}
        self._store: Any
        if store is not None:
            self.database = store.redacted
            try:
                private_dir(directory)
                private_dir(self.claims_dir)
            except OSError as exc:
                raise _write_error(directory, exc) from None
            self._store = _StoreValues(store)
            return
        try:
            private_dir(directory)
            private_dir(directory / "responses")
            private_dir(self.claims_dir)
            # Every value stays inside cache.db (no side files that could go missing unnoticed).
            self._store = diskcache.Cache(str(directory / "responses"), disk=diskcache.JSONDisk,
                                          disk_compress_level=6, size_limit=2**34,
                                          disk_min_file_size=2**30)
            for path in directory.joinpath("responses").glob("cache.db*"):
                private_file(path)
        except OSError as exc:
            if disk_full(exc) or read_only_disk(exc):
                raise _write_error(directory, exc) from None
            raise CacheError(f"cannot open the response cache at {directory}: {exc.strerror or exc}",
                             hint="set cache_dir in evalkit.toml or EVALKIT_CACHE_DIR to a writable "
                                  "folder") from None
        except sqlite3.DatabaseError as exc:
            if disk_full(exc) or read_only_disk(exc):
                raise _write_error(directory, exc) from None
            raise StateError(f"{self.database}: the response cache database is damaged ({exc})",
                             path=self.database, hint=REPAIR_HINT) from None

    @property
    def readable(self) -> bool:
        return self.mode in ("use", "read-only")

    @property
    def writable(self) -> bool:
        return self.mode in ("use", "refresh")

    def _damaged(self, key: str, why: object) -> StateError:
        return StateError(f"{self.database}: damaged response cache entry {key[:16]}… ({why})",
                          path=self.database, hint=REPAIR_HINT)

    def get_key(self, key: str, *, keep: bool = False) -> ModelResponse | None:
        """The stored answer (None: not stored). ``keep``: also hold it for the next read of ``key``."""
        if not self.readable:
            return None
        ahead = self._read_ahead.pop(key, None)
        if ahead is not None:
            return ahead
        try:
            value = self._store.get(key)
        except _DAMAGE as exc:
            raise self._damaged(key, exc) from None
        if value is None:
            return None
        try:
            response = unwrap(value)
        except ValueError as exc:
            raise self._damaged(key, exc) from None
        if keep:
            self._read_ahead[key] = response
        return response

    def get(self, endpoint: str, request: ModelRequest, *, keep: bool = False) -> ModelResponse | None:
        return self.get_key(request_key(endpoint, request), keep=keep)

    def put(self, endpoint: str, request: ModelRequest, response: ModelResponse) -> None:
        self.put_key(request_key(endpoint, request), response)

    def put_key(self, key: str, response: ModelResponse) -> None:
        """Store under a key computed earlier (batch results arrive with only their custom_id)."""
        if not self.writable:
            return
        try:
            self._store.set(key, wrap(response))
        except (OSError, sqlite3.Error) as exc:
            raise _write_error(Path(self.database), exc) from None

    def claim(self, key: str) -> Claim:
        """The claim to fetch ``key`` (a no-op claim when this session neither reads nor writes)."""
        if self.mode == "off":
            return Claim(None, key)
        if self.shared is not None:
            return StoreClaim(self.claims_dir, key, self.shared)
        return Claim(self.claims_dir, key)

    def adopt_orphans(self) -> list[Attempted]:
        """Counts of possible double billing that died with their process, for this run to report: tallies
        of dead processes, and marks of attempts whose answer was cached just before its process died.
        Each is taken by exactly one run (renamed first, then read and removed)."""
        found: list[Attempted] = []
        for path in self.claims_dir.glob("*.tally"):
            parts = path.name.split(".")
            if len(parts) != 3 or not parts[1].isdigit() or pid_alive(int(parts[1])):
                continue
            found += self._take(path)
        for path in self.claims_dir.glob("*.inflight"):
            key = path.name.removesuffix(".inflight")
            claim = Claim(self.claims_dir, key)
            if not claim.try_acquire():
                continue  # somebody is working on it
            try:
                if self.get_key(key) is not None:  # answered and cached: earlier attempts are the extra
                    for attempted in self._take(path):
                        if attempted.count > 1:
                            found.append(Attempted(key, attempted.count - 1, attempted.model,
                                                   attempted.input_tokens, attempted.max_tokens))
            finally:
                claim.release()
        return found

    def _take(self, path: Path) -> list[Attempted]:
        taken = path.with_name(f"{path.name}.taken-{os.getpid()}")
        try:
            os.rename(path, taken)
        except OSError:
            return []  # another run took it first
        attempted = Attempted.read(taken)
        taken.unlink(missing_ok=True)
        return [attempted] if attempted else []


    # -- verify / repair -----------------------------------------------------------------------------
    def verify(self) -> VerifyReport:
        """Read every entry and check its checksum."""
        report = VerifyReport(database=self.database)
        try:
            keys = list(self._store.iterkeys())
        except _DAMAGE as exc:
            report.unreadable = str(exc)
            return report
        for key in keys:
            report.entries += 1
            try:
                value = self._store.get(key)
                unwrap(value)
            except _DAMAGE:
                report.damaged.append(str(key))
                continue
            if isinstance(value, dict) and value.get("format") == VALUE_FORMAT:
                report.checksummed += 1
            else:
                report.legacy += 1
        return report

    def drop(self, keys: list[str]) -> None:
        for key in keys:
            try:
                self._store.delete(key)
            except _DAMAGE:
                pass

    def __len__(self) -> int:
        return len(self._store)

    def close(self) -> None:
        self._read_ahead.clear()
        self._store.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_cache(settings: Settings, mode: CacheMode = "use") -> ResponseCache:
    """The response cache of these settings: the shared store when one is configured, else cache.db."""
    return ResponseCache(settings.cache_dir, mode, store=open_store(settings))


def salvage(directory: Path) -> tuple[int, int, Path]:
    """Rebuild an unreadable ``cache.db``: every row SQLite can still read is copied into a new database;
    the damaged file is kept beside it. Returns (entries kept, rows lost, where the damaged file went)."""
    database = directory / "responses" / "cache.db"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    aside = database.with_name(f"cache.db.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = database.with_name(database.name + suffix)
        if source.exists():
            os.replace(source, aside.with_name(aside.name + suffix))
    kept = lost = 0
    rows: list[tuple[Any, Any]] = []
    try:
        connection = sqlite3.connect(f"file:{aside}?mode=ro", uri=True)
        try:
            rowids = [row[0] for row in connection.execute("SELECT rowid FROM Cache")]
            for rowid in rowids:
                try:
                    row = connection.execute("SELECT key, value FROM Cache WHERE rowid = ?",
                                             (rowid,)).fetchone()
                    rows.append(row)
                except sqlite3.DatabaseError:
                    lost += 1
        finally:
            connection.close()
    except sqlite3.DatabaseError:
        pass  # nothing readable at all
    with ResponseCache(directory) as fresh:
        for raw_key, raw_value in rows:
            try:
                key = str(_json(zlib.decompress(raw_key)) if isinstance(raw_key, bytes) else raw_key)
                value = unwrap(_json(zlib.decompress(raw_value)))
            except (*_DAMAGE, AttributeError):
                lost += 1
                continue
            fresh.put_key(key, value)
            kept += 1
    return kept, lost, aside


def _json(data: bytes) -> Any:
    import json  # noqa: PLC0415

    return json.loads(data.decode("utf-8"))

def forget_tallies(cache_dir: Path) -> None:
    """This process's run has reported its counts (a record holds them): its tallies are not needed."""
    for path in (cache_dir / "claims").glob(f"*.{os.getpid()}.tally"):
        path.unlink(missing_ok=True)
