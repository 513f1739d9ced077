"""evalkit's own state on disk, checked and repaired: the response cache and the batch ledger
(``evalkit cache verify`` / ``evalkit cache repair``).

Repair keeps everything that can be kept and never deletes a ledger record: records come back from the
ledger's journal, a damaged ``cache.db`` is rebuilt from what SQLite can still read, and answers the cache
lost that a collected batch returned are read back from the batch's results (free, for 29 days). What a
re-run would pay for again is said, not done.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from evalkit.backends import connect
from evalkit.config import Settings, load_settings
from evalkit.errors import EvalkitError, ProviderError, StateError, StoreError, UsageError
from evalkit.providers.base import ModelResponse
from evalkit.providers.response_cache import VerifyReport, open_cache, salvage
from evalkit.run.session import open_ledger
from evalkit.store import PostgresStore, StoreCheck, open_store


@dataclass(frozen=True)
class StateCheck:
    cache_dir: Path
    ledger_dir: Path | str  # the ledger's folder, or the shared store (redacted URL)
    cache: VerifyReport
    ledger: list[tuple[Path | str, str]]  # damaged record files (or store records) and what is wrong

    @property
    def ok(self) -> bool:
        return self.cache.ok and not self.ledger


def verify_state(settings: Settings) -> StateCheck:
    """Read every response-cache entry (checking its checksum) and every batch-ledger record."""
    ledger = open_ledger(settings)
    try:
        with open_cache(settings, "read-only") as cache:
            report = cache.verify()
    except StoreError:
        raise  # the store itself cannot be used: its own message says how to fix it
    except StateError as error:
        database = settings.cache_dir / "responses" / "cache.db"
        report = VerifyReport(database=database, unreadable=error.message.removeprefix(f"{database}: "))
    return StateCheck(cache_dir=settings.cache_dir, ledger_dir=ledger.location, cache=report,
                      ledger=ledger.verify())


def repair_state(settings: Settings) -> list[str]:
    """Repair what :func:`verify_state` finds, keeping everything that can be kept; says what a re-run
    would pay for again. Ledger records come back from the ledger's journal; answers a damaged cache lost
    come back from their batches' results when the ledger knows them (free, for 29 days)."""
    check = verify_state(settings)
    done = open_ledger(settings).repair()
    lost: list[str] = []
    if check.cache.unreadable is not None:
        kept, rows_lost, aside = salvage(settings.cache_dir)
        done.append(f"{check.cache.database} could not be read ({check.cache.unreadable}): rebuilt it with "
                    f"the {kept} entries that could be read ({rows_lost} could not); the damaged file "
                    f"is kept as {aside}")
    elif check.cache.damaged:
        with open_cache(settings) as cache:
            cache.drop(check.cache.damaged)
        lost = check.cache.damaged
        done.append(f"removed {len(lost)} damaged response-cache entr{'y' if len(lost) == 1 else 'ies'} "
                    f"from {check.cache.database}")
    done.extend(_recover_batch_answers(settings))
    return done


def _recover_batch_answers(settings: Settings) -> list[str]:
    """Answers the ledger says a batch returned that the cache no longer has: read them again."""
    ledger = open_ledger(settings)
    records = [r for r in map(ledger.read, ledger.record_ids()) if r.state == "collected" and r.batch_id]
    if not records:
        return []
    with open_cache(settings) as cache:
        missing = [r for r in records
                   if any(outcome == "succeeded" and cache.get_key(r.items[custom_id]) is None
                          for custom_id, outcome in r.outcomes.items() if custom_id in r.items)]
        if not missing:
            return []
        try:
            backend = connect(settings, offline=None)
        except EvalkitError as error:
            return [f"{len(missing)} collected batch(es) hold answers the cache lost; could not reach the "
                    f"API to read them again ({error.message}): a re-run pays for them again"]
        provider = backend.provider

        async def read_again() -> list[str]:
            lines = []
            try:
                for record in missing:
                    if record.endpoint != provider.endpoint:
                        lines.append(f"batch {record.batch_id} was made at {record.endpoint}, not "
                                     f"{provider.endpoint}: its lost answers are paid again by a re-run")
                        continue
                    count = 0
                    async for item in provider.batch_results(str(record.batch_id)):
                        key = record.items.get(item.custom_id)
                        if not key or item.outcome != "succeeded" or item.message is None:
                            continue
                        if cache.get_key(key) is None:
                            cache.put_key(key, ModelResponse(message=item.message, mode="batch",
                                                             simulated=provider.simulated,
                                                             batch_id=record.batch_id))
                            count += 1
                    lines.append(f"recovered {count} answer(s) from the results of batch {record.batch_id}")
            except ProviderError as error:
                lines.append(f"could not read batch results again ({error.message}): a re-run pays for "
                             "the rest again")
            finally:
                await provider.aclose()
            return lines

        return asyncio.run(read_again())


def verify_project_state(path: str | Path | None = None) -> StateCheck:
    """Check every response-cache entry and batch-ledger record of the project holding ``path``."""
    return verify_state(load_settings(project_root(path)))


def repair_project_state(path: str | Path | None = None) -> list[str]:
    """Repair what :func:`verify_project_state` finds (``evalkit cache repair``); returns what was done."""
    return repair_state(load_settings(project_root(path)))


def project_root(path: str | Path | None) -> Path:
    """A task file's folder or the folder given (default: the working folder); the task itself is not
    loaded, as it may be what is broken."""
    start = Path(path) if path is not None else Path.cwd()
    return start.parent if start.is_file() else start


def _shared(settings: Settings) -> PostgresStore:
    store = open_store(settings)
    if store is None:
        raise UsageError("no shared store is configured: evalkit keeps its state embedded (diskcache and "
                         f"files under {settings.cache_dir.parent})",
                         hint='set store = "postgresql://USER@HOST/DATABASE" under [evalkit] in evalkit.toml '
                              "or EVALKIT_STORE (see docs/store.md)")
    return store


def migrate_store(path: str | Path | None = None) -> tuple[str, int | None, int]:
    """Create or upgrade the shared store's schema (``evalkit store migrate``): (store, before, now)."""
    store = _shared(load_settings(project_root(path)))
    before, now = store.migrate()
    return store.redacted, before, now


def verify_store(path: str | Path | None = None) -> tuple[StoreCheck, VerifyReport | None]:
    """Connect to the shared store, check its schema and every stored answer's checksum and ledger record
    (``evalkit store verify``)."""
    settings = load_settings(project_root(path))
    check = _shared(settings).verify()
    if not check.ok:
        return check, None
    with open_cache(settings, "read-only") as cache:
        answers = cache.verify()
    for record_id, problem in open_ledger(settings).verify():
        check.problems.append(f"batch ledger record {record_id}: {problem}")
    if not answers.ok:
        check.problems.append(f"{len(answers.damaged)} damaged stored answer(s): `evalkit cache repair` "
                              "removes them (a re-run pays for them again)")
    return check, answers
