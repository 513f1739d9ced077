"""The PostgreSQL store (docs/store.md has the schema and how to run it).

One connection per process (autocommit; multi-statement changes in explicit transactions), opened on first
use; the schema is created on first use too (``evalkit store migrate`` does it ahead, e.g. for a role that
may not create tables at run time). Every database error becomes a :class:`StoreError` that names the store
by its redacted URL: the password is never part of a message.

**Claims** are rows of ``evalkit_claims`` (name, holder, expires_at), taken in one statement that succeeds
only when nobody holds the name or the holder's claim has expired. A live holder renews its claims from a
background thread every third of the claim's time to live; a runner that dies stops renewing, and its
claims expire (``DEFAULT_CLAIM_TTL_S`` after its last renewal) so another runner takes over.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from evalkit._urls import REDACTED, redact_url
from evalkit.errors import StoreError

#: The schema this evalkit reads and writes (``evalkit_meta.schema_version``).
SCHEMA_VERSION = 1
#: Seconds a claim outlives its holder's last renewal (a dead runner's claim is free after this).
DEFAULT_CLAIM_TTL_S = 30.0
CONNECT_TIMEOUT_S = 10
TABLES = ("evalkit_meta", "evalkit_responses", "evalkit_claims", "evalkit_batch_records",
          "evalkit_batch_journal", "evalkit_runs")

#: Migrations, in order: ``MIGRATIONS[v - 1]`` takes the schema from version v - 1 to v.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE IF NOT EXISTS evalkit_meta (key text PRIMARY KEY, value text NOT NULL)",
        """CREATE TABLE IF NOT EXISTS evalkit_responses (
               key text PRIMARY KEY,
               value text NOT NULL,
               created_at timestamptz NOT NULL DEFAULT now())""",
        """CREATE TABLE IF NOT EXISTS evalkit_claims (
               name text PRIMARY KEY,
               holder text NOT NULL,
               claimed_at timestamptz NOT NULL DEFAULT now(),
               expires_at timestamptz NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS evalkit_batch_records (
               record_id text PRIMARY KEY,
               endpoint text NOT NULL,
               state text NOT NULL,
               record text NOT NULL,
               updated_at timestamptz NOT NULL DEFAULT now())""",
        "CREATE INDEX IF NOT EXISTS evalkit_batch_records_endpoint ON evalkit_batch_records (endpoint)",
        """CREATE TABLE IF NOT EXISTS evalkit_batch_journal (
               id bigserial PRIMARY KEY,
               record_id text NOT NULL,
               sha256 text NOT NULL,
               record text NOT NULL,
               written_at timestamptz NOT NULL DEFAULT now())""",
        """CREATE TABLE IF NOT EXISTS evalkit_runs (
               task text NOT NULL,
               run_id text NOT NULL,
               finished_at text NOT NULL,
               summary text NOT NULL,
               results text NOT NULL,
               stored_at timestamptz NOT NULL DEFAULT now(),
               PRIMARY KEY (task, run_id))""",
        "CREATE INDEX IF NOT EXISTS evalkit_runs_finished ON evalkit_runs (task, finished_at)",
    ),
)
#: pg_advisory_xact_lock key that serialises concurrent migrations (two runners starting at once).
_MIGRATE_LOCK = 0x65766B31


@dataclass
class StoreCheck:
    """What ``evalkit store verify`` found."""

    store: str  # the redacted URL
    schema_version: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    expired_claims: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class PostgresStore:
    """A PostgreSQL database holding evalkit's shared state (see the module docstring)."""

    def __init__(self, url: str, *, claim_ttl_s: float = DEFAULT_CLAIM_TTL_S) -> None:
        self._url = url
        self.redacted = redact_url(url)
        try:
            self._password = unquote(urlsplit(url).password or "")
        except ValueError:
            self._password = ""
        self.claim_ttl_s = claim_ttl_s
        self.holder = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self._conn: Any = None
        self._lock = threading.RLock()
        self._ready = False
        self._held: set[str] = set()
        self._renewer: threading.Thread | None = None
        self._stop = threading.Event()
        self.closed = False

    # -- connection and errors -----------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        text = text.replace(self._url, self.redacted)
        if self._password:
            text = text.replace(self._password, REDACTED)
        return text

    def error(self, action: str, exc: BaseException) -> StoreError:
        detail = self._scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        return StoreError(f"the shared store {self.redacted} failed while {action}: {detail}",
                          path=self.redacted,
                          hint="check that the PostgreSQL server is up and reachable, and the store URL, "
                               "user and password (PGPASSWORD or ~/.pgpass); `evalkit store verify` "
                               "checks the connection and the schema. Nothing paid for is lost: answers "
                               "already stored stay there")

    def _connect(self) -> Any:
        try:
            import psycopg  # noqa: PLC0415 - the optional extra: only when a store is configured
        except ImportError:
            raise StoreError(f"store = {self.redacted} needs the PostgreSQL driver, which is not installed",
                             path=self.redacted,
                             hint="pip install 'evalkit[postgres]' (psycopg 3)") from None
        try:
            return psycopg.connect(self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                   application_name="evalkit")
        except psycopg.Error as exc:
            raise self.error("connecting", exc) from None

    @contextmanager
    def _cursor(self, action: str, *, transaction: bool = False, migrate: bool = True) -> Iterator[Any]:
        import psycopg  # noqa: PLC0415

        with self._lock:
            if self.closed:
                raise StoreError(f"the shared store {self.redacted} was closed", path=self.redacted)
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            if migrate and not self._ready:
                self._ensure_schema()
            try:
                if transaction:
                    with self._conn.transaction(), self._conn.cursor() as cursor:
                        yield cursor
                else:
                    with self._conn.cursor() as cursor:
                        yield cursor
            except psycopg.Error as exc:
                if self._conn.closed or self._conn.broken:
                    self._conn = None
                raise self.error(action, exc) from None

    def _ensure_schema(self) -> None:
        version = self._read_version()
        if version is None or version < SCHEMA_VERSION:
            self.migrate()
            version = SCHEMA_VERSION
        if version > SCHEMA_VERSION:
            raise StoreError(f"the shared store {self.redacted} has schema version {version}; this evalkit "
                             f"knows version {SCHEMA_VERSION}", path=self.redacted,
                             hint="upgrade evalkit on this machine (another machine migrated the store)")
        self._ready = True

    def _read_version(self) -> int | None:
        with self._cursor("reading the schema version", migrate=False) as cursor:
            cursor.execute("SELECT to_regclass('evalkit_meta') IS NOT NULL")
            if not cursor.fetchone()[0]:
                return None
            cursor.execute("SELECT value FROM evalkit_meta WHERE key = 'schema_version'")
            row = cursor.fetchone()
            return int(row[0]) if row else None

    def migrate(self) -> tuple[int | None, int]:
        """Create or upgrade the schema (idempotent; concurrent calls wait for each other).
        Returns (version before, version now)."""
        with self._cursor("migrating the schema", transaction=True, migrate=False) as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
            cursor.execute("SELECT to_regclass('evalkit_meta') IS NOT NULL")
            before: int | None = None
            if cursor.fetchone()[0]:
                cursor.execute("SELECT value FROM evalkit_meta WHERE key = 'schema_version'")
                row = cursor.fetchone()
                before = int(row[0]) if row else None
            for version in range((before or 0) + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version - 1]:
                    cursor.execute(statement)
            if before is None or before < SCHEMA_VERSION:
                cursor.execute("INSERT INTO evalkit_meta (key, value) VALUES ('schema_version', %s) "
                               "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                               (str(SCHEMA_VERSION),))
        self._ready = True
        return before, max(before or 0, SCHEMA_VERSION)

    def verify(self) -> StoreCheck:
        """Connect, check the schema and count what the store holds (response checksums are checked by
        the response cache, which knows the value format)."""
        check = StoreCheck(store=self.redacted)
        try:
            check.schema_version = self._read_version()
        except StoreError as error:
            check.problems.append(error.message)
            return check
        if check.schema_version is None:
            check.problems.append("the schema is not there yet: run `evalkit store migrate`")
            return check
        if check.schema_version != SCHEMA_VERSION:
            check.problems.append(f"schema version {check.schema_version}, this evalkit knows "
                                  f"{SCHEMA_VERSION}: run `evalkit store migrate` or upgrade evalkit")
            return check
        with self._cursor("verifying") as cursor:
            for table in TABLES:
                cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
                if not cursor.fetchone()[0]:
                    check.problems.append(f"table {table} is missing: run `evalkit store migrate`")
                    continue
                cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - a fixed table name
                check.counts[table] = int(cursor.fetchone()[0])
            cursor.execute("SELECT count(*) FROM evalkit_claims WHERE expires_at < now()")
            check.expired_claims = int(cursor.fetchone()[0])
        return check

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if self._held and self._conn is not None and not self._conn.closed:
                try:
                    with self._conn.cursor() as cursor:
                        cursor.execute("DELETE FROM evalkit_claims WHERE holder = %s", (self.holder,))
                except Exception:  # noqa: BLE001 - closing: the claims expire anyway
                    pass
            self._held.clear()
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            self.closed = True

    # -- responses -------------------------------------------------------------------------------------
    def get_response(self, key: str) -> str | None:
        with self._cursor("reading a cached answer") as cursor:
            cursor.execute("SELECT value FROM evalkit_responses WHERE key = %s", (key,))
            row = cursor.fetchone()
        return None if row is None else str(row[0])

    def put_response(self, key: str, value: str) -> None:
        with self._cursor("storing a paid answer") as cursor:
            cursor.execute("INSERT INTO evalkit_responses (key, value) VALUES (%s, %s) "
                           "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", (key, value))

    def delete_response(self, key: str) -> None:
        with self._cursor("removing a damaged answer") as cursor:
            cursor.execute("DELETE FROM evalkit_responses WHERE key = %s", (key,))

    def response_keys(self) -> list[str]:
        with self._cursor("listing cached answers") as cursor:
            cursor.execute("SELECT key FROM evalkit_responses ORDER BY key")
            return [str(row[0]) for row in cursor.fetchall()]

    def count_responses(self) -> int:
        with self._cursor("counting cached answers") as cursor:
            cursor.execute("SELECT count(*) FROM evalkit_responses")
            return int(cursor.fetchone()[0])

    # -- claims ----------------------------------------------------------------------------------------
    def try_claim(self, name: str) -> bool:
        """Take ``name`` unless a live holder has it (an expired claim is taken over)."""
        with self._cursor("taking a claim") as cursor:
            cursor.execute(
                "INSERT INTO evalkit_claims AS c (name, holder, expires_at) "
                "VALUES (%s, %s, now() + make_interval(secs => %s)) "
                "ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, claimed_at = now(), "
                "expires_at = EXCLUDED.expires_at WHERE c.expires_at < now() OR c.holder = EXCLUDED.holder "
                "RETURNING holder", (name, self.holder, self.claim_ttl_s))
            taken = cursor.fetchone() is not None
        if taken:
            self._held.add(name)
            self._start_renewing()
        return taken

    def claim(self, name: str, *, poll_s: float = 0.1, timeout_s: float | None = None) -> None:
        """Wait for ``name`` (blocking)."""
        started = time.monotonic()
        while not self.try_claim(name):
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                raise StoreError(f"claim {name} in the shared store {self.redacted} is still held by "
                                 f"another runner after {timeout_s:.0f} s", path=self.redacted,
                                 hint="run the same command again later; a dead runner's claim expires "
                                      f"{self.claim_ttl_s:.0f} s after it stopped")
            time.sleep(poll_s)

    def holds(self, name: str) -> bool:
        return name in self._held

    def release(self, name: str) -> None:
        self._held.discard(name)
        with self._cursor("releasing a claim") as cursor:
            cursor.execute("DELETE FROM evalkit_claims WHERE name = %s AND holder = %s", (name, self.holder))

    def claim_holder(self, name: str) -> tuple[str, bool] | None:
        """(holder, expired) of ``name``, or None when nobody holds it."""
        with self._cursor("reading a claim") as cursor:
            cursor.execute("SELECT holder, expires_at < now() FROM evalkit_claims WHERE name = %s", (name,))
            row = cursor.fetchone()
        return None if row is None else (str(row[0]), bool(row[1]))

    def _start_renewing(self) -> None:
        if self._renewer is not None and self._renewer.is_alive():
            return
        self._renewer = threading.Thread(target=self._renew, name="evalkit-store-claims", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        """Keep this process's claims alive (its own connection: the main one may be busy)."""
        import psycopg  # noqa: PLC0415

        connection = None
        while not self._stop.wait(self.claim_ttl_s / 3):
            if not self._held:
                continue
            try:
                if connection is None or connection.closed:
                    connection = psycopg.connect(self._url, autocommit=True,
                                                 connect_timeout=CONNECT_TIMEOUT_S,
                                                 application_name="evalkit-claims")
                with connection.cursor() as cursor:
                    cursor.execute("UPDATE evalkit_claims SET expires_at = now() + make_interval(secs => %s) "
                                   "WHERE holder = %s", (self.claim_ttl_s, self.holder))
            except psycopg.Error:
                connection = None  # the next round tries again; the claim may expire meanwhile
        if connection is not None:
            connection.close()

    # -- batch ledger ----------------------------------------------------------------------------------
    def write_batch_record(self, record_id: str, endpoint: str, state: str, record: str, sha256: str) -> None:
        """Journal and current version in one transaction."""
        with self._cursor("writing a batch ledger record", transaction=True) as cursor:
            cursor.execute("INSERT INTO evalkit_batch_journal (record_id, sha256, record) "
                           "VALUES (%s, %s, %s)", (record_id, sha256, record))
            cursor.execute("INSERT INTO evalkit_batch_records "
                           "(record_id, endpoint, state, record, updated_at) "
                           "VALUES (%s, %s, %s, %s, now()) ON CONFLICT (record_id) DO UPDATE SET "
                           "endpoint = EXCLUDED.endpoint, state = EXCLUDED.state, record = EXCLUDED.record, "
                           "updated_at = now()", (record_id, endpoint, state, record))

    def batch_records(self, endpoint: str | None = None) -> list[tuple[str, str]]:
        """(record_id, record JSON) of every record (of ``endpoint``), oldest first."""
        with self._cursor("reading the batch ledger") as cursor:
            if endpoint is None:
                cursor.execute("SELECT record_id, record FROM evalkit_batch_records ORDER BY record_id")
            else:
                cursor.execute("SELECT record_id, record FROM evalkit_batch_records WHERE endpoint = %s "
                               "ORDER BY record_id", (endpoint,))
            return [(str(a), str(b)) for a, b in cursor.fetchall()]

    def batch_record(self, record_id: str) -> str | None:
        with self._cursor("reading a batch ledger record") as cursor:
            cursor.execute("SELECT record FROM evalkit_batch_records WHERE record_id = %s", (record_id,))
            row = cursor.fetchone()
        return None if row is None else str(row[0])

    def batch_journal(self) -> list[tuple[str, str, str]]:
        """(record_id, sha256, record JSON) of every version written, in order."""
        with self._cursor("reading the batch ledger journal") as cursor:
            cursor.execute("SELECT record_id, sha256, record FROM evalkit_batch_journal ORDER BY id")
            return [(str(a), str(b), str(c)) for a, b, c in cursor.fetchall()]

    def restore_batch_record(self, record_id: str, endpoint: str, state: str, record: str) -> None:
        with self._cursor("restoring a batch ledger record") as cursor:
            cursor.execute("UPDATE evalkit_batch_records SET endpoint = %s, state = %s, record = %s, "
                           "updated_at = now() WHERE record_id = %s", (endpoint, state, record, record_id))

    # -- run history -----------------------------------------------------------------------------------
    def put_run(self, task: str, run_id: str, finished_at: str, summary: str, results: str) -> None:
        with self._cursor("storing a run") as cursor:
            cursor.execute("INSERT INTO evalkit_runs (task, run_id, finished_at, summary, results) "
                           "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (task, run_id) DO UPDATE SET "
                           "finished_at = EXCLUDED.finished_at, summary = EXCLUDED.summary, "
                           "results = EXCLUDED.results, stored_at = now()",
                           (task, run_id, finished_at, summary, results))

    def runs(self, task: str | None = None) -> list[tuple[str, str, str]]:
        """(task, run_id, summary JSON) of every run (of ``task``), oldest first."""
        with self._cursor("listing runs") as cursor:
            if task is None:
                cursor.execute("SELECT task, run_id, summary FROM evalkit_runs ORDER BY finished_at, run_id")
            else:
                cursor.execute("SELECT task, run_id, summary FROM evalkit_runs WHERE task = %s "
                               "ORDER BY finished_at, run_id", (task,))
            return [(str(a), str(b), str(c)) for a, b, c in cursor.fetchall()]

    def run(self, run_id: str, task: str | None = None) -> list[tuple[str, str, str, str]]:
        """(task, run_id, summary JSON, results JSONL) of the runs named ``run_id`` (in ``task``)."""
        with self._cursor("reading a run") as cursor:
            if task is None:
                cursor.execute("SELECT task, run_id, summary, results FROM evalkit_runs WHERE run_id = %s",
                               (run_id,))
            else:
                cursor.execute("SELECT task, run_id, summary, results FROM evalkit_runs WHERE run_id = %s "
                               "AND task = %s", (run_id, task))
            return [(str(a), str(b), str(c), str(d)) for a, b, c, d in cursor.fetchall()]
