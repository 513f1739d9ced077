"""``evalkit status``: the batches in flight across a project's tasks, from the batch ledger and the API.

A batch can take hours. The ledger knows which task submitted it, for which models and how many
requests, and when; the API (or the simulator) knows how far it is. The ETA extrapolates the rate so
far: it is unknown until the first results are in.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from evalkit.backends import connect
from evalkit.config import load_settings
from evalkit.errors import ProviderError
from evalkit.providers.base import BatchInfo
from evalkit.providers.batching import LedgerRecord
from evalkit.run.session import open_ledger
from evalkit.run.state import project_root

#: Batch request counts that are finished, one way or another.
_DONE = ("succeeded", "errored", "canceled", "expired")


@dataclass(frozen=True)
class InFlight:
    """One open batch submission of the project."""

    task: str  # "" for records written before the ledger named the task
    record_id: str
    batch_id: str | None
    state: str  # the ledger's: submitting | submitted | verifying
    warmup: bool
    models: dict[str, int]
    requests: int
    age_s: float
    status: str | None = None  # the API's: in_progress | canceling | ended (None: not asked)
    done: int | None = None  # requests finished, when the API was asked
    eta_s: float | None = None  # None: unknown (nothing finished yet, or not asked)
    note: str | None = None  # why the API could not say

    @property
    def progress(self) -> str:
        return "?" if self.done is None else f"{self.done}/{self.requests}"


def _entry(record: LedgerRecord, info: BatchInfo | None, note: str | None, now: datetime) -> InFlight:
    age = (now - datetime.fromisoformat(record.created_at)).total_seconds()
    done = eta = None
    if info is not None:
        done = sum(info.counts.get(kind, 0) for kind in _DONE)
        if info.ended:
            eta = 0.0
        elif done:
            eta = age * (len(record.items) - done) / done
    return InFlight(task=record.task, record_id=record.record_id, batch_id=record.batch_id,
                    state=record.state, warmup=record.warmup, models=dict(record.models),
                    requests=len(record.items), age_s=age, status=info.status if info else None,
                    done=done, eta_s=eta, note=note)


async def _ask(records: list[LedgerRecord], offline: bool | None, root: Path) -> list[InFlight]:
    settings = load_settings(root)
    provider = connect(settings, offline=offline).provider
    now = datetime.now(UTC)
    found = []
    for record in records:
        info, note = None, None
        if record.endpoint != provider.endpoint:
            note = f"submitted to {record.endpoint}, not asked (this command talks to {provider.endpoint})"
        elif record.batch_id is None:
            note = "its create call has not been confirmed yet"
        else:
            try:
                info = await provider.get_batch(record.batch_id)
            except ProviderError as error:
                note = f"the API could not say: {error.message}"
        if info is not None and info.ended:
            note = "ended: the same `evalkit run` command (without --detach) collects its answers"
        found.append(_entry(record, info, note, now))
    return found


def batch_status(path: str | Path | None = None, *, ask_api: bool = True,
                 offline: bool | None = None) -> list[InFlight]:
    """Every open batch of the project holding ``path`` (a task file or folder; default: the working
    folder), oldest first; with ``ask_api`` each one's progress and ETA from the API or simulator."""
    root = project_root(path)
    ledger = open_ledger(load_settings(root))  # the shared store's when one is configured
    records = sorted((ledger.read(record_id) for record_id in ledger.record_ids()),
                     key=lambda r: r.created_at)
    records = [r for r in records if r.open]
    if not ask_api or not records:
        now = datetime.now(UTC)
        return [_entry(r, None, None, now) for r in records]
    return asyncio.run(_ask(records, offline, root))
