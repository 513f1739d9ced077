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
from evalkit.errors import EvalkitError, ProviderError, StateError
from evalkit.providers.base import ModelResponse
from evalkit.providers.batching import BatchLedger
from evalkit.providers.response_cache import ResponseCache, VerifyReport, salvage
from evalkit.run.session import batch_ledger_dir


@dataclass(frozen=True)
class StateCheck:
    cache_dir: Path
    ledger_dir: Path
    cache: VerifyReport
    ledger: list[tuple[Path, str]]  # damaged record files and what is wrong with each

    @property
    def ok(self) -> bool:
        return self.cache.ok and not self.ledger


def verify_state(settings: Settings) -> StateCheck:
    """Read every response-cache entry (checking its checksum) and every batch-ledger record."""
    ledger = BatchLedger(batch_ledger_dir(settings))
    try:
        with ResponseCache(settings.cache_dir, "read-only") as cache:
            report = cache.verify()
    except StateError as error:
        database = settings.cache_dir / "responses" / "cache.db"
        report = VerifyReport(database=database, unreadable=error.message.removeprefix(f"{database}: "))
    return StateCheck(cache_dir=settings.cache_dir, ledger_dir=ledger.directory, cache=report,
                      ledger=ledger.verify())


def repair_state(settings: Settings) -> list[str]:
    """Repair what :func:`verify_state` finds, keeping everything that can be kept; says what a re-run
    would pay for again. Ledger records come back from the ledger's journal; answers a damaged cache lost
    come back from their batches' results when the ledger knows them (free, for 29 days)."""
    check = verify_state(settings)
    done = BatchLedger(batch_ledger_dir(settings)).repair()
    lost: list[str] = []
    if check.cache.unreadable is not None:
        kept, rows_lost, aside = salvage(settings.cache_dir)
        done.append(f"{check.cache.database} could not be read ({check.cache.unreadable}): rebuilt it with "
                    f"the {kept} entries that could be read ({rows_lost} could not); the damaged file "
                    f"is kept as {aside}")
    elif check.cache.damaged:
        with ResponseCache(settings.cache_dir) as cache:
            cache.drop(check.cache.damaged)
        lost = check.cache.damaged
        done.append(f"removed {len(lost)} damaged response-cache entr{'y' if len(lost) == 1 else 'ies'} "
                    f"from {check.cache.database}")
    done.extend(_recover_batch_answers(settings))
    return done


def _recover_batch_answers(settings: Settings) -> list[str]:
    """Answers the ledger says a batch returned that the cache no longer has: read them again."""
    ledger = BatchLedger(batch_ledger_dir(settings))
    records = [r for r in map(ledger.read, (p.stem for p in ledger.record_files()))
               if r.state == "collected" and r.batch_id]
    if not records:
        return []
    with ResponseCache(settings.cache_dir) as cache:
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
