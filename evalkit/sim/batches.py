"""The simulator's Message Batches: create, retrieve, list, cancel, delete, results (JSONL).

Batches live on disk in the simulator's state folder, like on the real API's servers: an evalkit process
killed mid-poll and started again (with a fresh in-process simulator) finds its batch where it left it.

Batches run on the simulator's own clock, not on the client's polls: a batch ends ``batch_delay_s`` after
creation, when a timer processes it — and bills it, whether anyone polls or not (a simulator started on
an existing state folder processes what came due while it was down). A results file is written before
anything is billed, so no item is ever billed twice. A cancel moves the batch to ``canceling`` for
``batch_cancel_delay_s``; it then ends with the items processed before the cancel succeeded (billed)
and the rest ``canceled`` (not billed). Prompt-cache hits inside a batch are best-effort: an item whose
prefix is readable reads it with probability ``batch_cache_hit_rate`` (a per-item draw), else writes it
again — and a batch processed after an entry's TTL ran out misses it altogether.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from filelock import FileLock

from evalkit._io import atomic_write_json, atomic_write_text
from evalkit.sim.validate import CURRENT_VERSION, Context
from evalkit.sim.wire import ApiError, api_id, invalid

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_REQUESTS = 100_000
MAX_BYTES = 256 * 1024 * 1024
#: How many items of a batch the simulator runs side by side (they cannot read each other's cache writes).
BATCH_PARALLELISM = 16

# Spelled at module level: inside BatchStore the name `list` is its list() method.
_Records = list[dict[str, Any]]
_Billable = list[tuple[dict[str, Any], dict[str, Any], str]]  # (message, request body, custom_id)


def _stamp(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z") if moment else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


class BatchStore:
    """Batches of one simulator, persisted under ``<state_dir>/batches/``."""

    def __init__(self, state: Any, directory: Path) -> None:
        self.state = state  # SimulatorState (answers, bills, and keeps the clock)
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._timers_lock = threading.Lock()
        self._timers: dict[str, threading.Timer] = {}

    def resume(self) -> None:
        """Schedule what was still running when the last simulator on this folder stopped (what came due
        meanwhile is processed now). Called once the simulator state is complete."""
        for meta in self._metas():
            if meta["processing_status"] != "ended":
                self._schedule(meta)

    def _now(self) -> datetime:
        now: datetime = self.state.clock.now()
        return now

    # -- the batch's own clock ---------------------------------------------------------------------
    @staticmethod
    def _due_at(meta: dict[str, Any]) -> datetime:
        due = _parse(meta["ends_at"])
        cancel_due = _parse(meta.get("cancel_ends_at"))
        assert due is not None
        return min(due, cancel_due) if cancel_due is not None else due

    def _schedule(self, meta: dict[str, Any], *, at_least: float = 0.0, tries: int = 0) -> None:
        """Process the batch when it comes due, on a daemon timer (nobody has to poll)."""
        delay = max(at_least, (self._due_at(meta) - self._now()).total_seconds())
        timer = threading.Timer(delay, self._fire, args=(meta["id"], tries))
        timer.daemon = True
        with self._timers_lock:
            previous = self._timers.pop(meta["id"], None)
            self._timers[meta["id"]] = timer
        if previous is not None:
            previous.cancel()
        timer.start()

    def _fire(self, batch_id: str, tries: int) -> None:
        """A timer's work. It has nobody to report to: whatever fails is tried again a few times, and any
        look at the batch (retrieve, results) processes it as well."""
        try:
            meta = self._load(batch_id)
            if meta["processing_status"] != "ended":
                meta = self._advance(batch_id)
        except Exception:  # noqa: BLE001 - the timer thread's boundary
            meta = None
        if meta is not None and meta["processing_status"] == "ended":
            return
        if tries < 20 and self._meta_path(batch_id).exists():
            try:
                pending = meta or self._load(batch_id)
            except Exception:  # noqa: BLE001 - deleted meanwhile
                return
            self._schedule(pending, at_least=0.05 if meta is not None else 0.5, tries=tries + 1)

    def process_due(self) -> None:
        """Process every batch whose time has come (after the clock was moved forward)."""
        for meta in self._metas():
            if meta["processing_status"] != "ended":
                self._advance(meta["id"])

    def _metas(self) -> list[dict[str, Any]]:
        metas = []
        for path in self.directory.glob("msgbatch_*.json"):
            if path.name.endswith(".requests.json"):
                continue
            try:
                metas.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue  # being written or deleted
        return metas

    # -- storage -----------------------------------------------------------------------------------
    def _meta_path(self, batch_id: str) -> Path:
        return self.directory / f"{batch_id}.json"

    def _load(self, batch_id: str) -> dict[str, Any]:
        if not re.fullmatch(r"msgbatch_[A-Za-z0-9]+", batch_id) or not self._meta_path(batch_id).exists():
            raise ApiError(404, "not_found_error", f"message_batch_id: {batch_id} not found")
        return json.loads(self._meta_path(batch_id).read_text(encoding="utf-8"))

    def _save(self, meta: dict[str, Any]) -> None:
        atomic_write_json(self._meta_path(meta["id"]), meta)

    # -- API operations ----------------------------------------------------------------------------
    def create(self, body: Any, raw_size: int, new_id: str, *, betas: list[str] | None = None,
               api_version: str = CURRENT_VERSION) -> dict[str, Any]:
        if raw_size > MAX_BYTES:
            raise ApiError(413, "request_too_large", "Request exceeds the maximum allowed number of bytes.")
        if not isinstance(body, dict) or set(body) - {"requests"}:
            extra = sorted(set(body) - {"requests"}) if isinstance(body, dict) else ["body"]
            raise invalid(f"{extra[0]}: Extra inputs are not permitted")
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise invalid("requests: List should have at least 1 item after validation, not 0")
        if len(requests) > MAX_REQUESTS:
            raise invalid(f"requests: List should have at most {MAX_REQUESTS} items after validation, "
                          f"not {len(requests)}")
        seen: set[str] = set()
        for index, item in enumerate(requests):
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(custom_id, str):
                raise invalid(f"requests.{index}.custom_id: Field required")
            if len(custom_id) > 64:
                raise invalid(f"requests.{index}.custom_id: String should have at most 64 characters")
            if not CUSTOM_ID.match(custom_id):
                raise invalid(f"requests.{index}.custom_id: String should match pattern "
                              "'^[a-zA-Z0-9_-]{1,64}$'")
            if custom_id in seen:
                raise invalid(f"requests.{index}.custom_id: duplicate custom_id '{custom_id}' in this batch")
            seen.add(custom_id)
            if not isinstance(item.get("params"), dict):
                raise invalid(f"requests.{index}.params: Field required")
        created = self._now()
        meta = {
            "id": new_id,
            "type": "message_batch",
            "processing_status": "in_progress",
            "request_counts": {"processing": len(requests), "succeeded": 0, "errored": 0, "canceled": 0,
                               "expired": 0},
            "created_at": _stamp(created),
            "expires_at": _stamp(created + timedelta(hours=24)),
            "ends_at": _stamp(created + timedelta(seconds=self.state.settings.batch_delay_s)),
            "ended_at": None,
            "cancel_initiated_at": None,
            "archived_at": None,
            "results_url": None,
            "betas": betas or [],  # the create call's anthropic-beta header: it applies to every item
            "api_version": api_version,  # and its anthropic-version: which params exist (sampling, §0.3)
        }
        atomic_write_json(self.directory / f"{new_id}.requests.json", requests)
        self._save(meta)
        self._schedule(meta)
        return meta

    def retrieve(self, batch_id: str, base_url: str) -> dict[str, Any]:
        meta = self._advance(batch_id)
        return self.public(meta, base_url)

    def list(self, *, limit: int, after_id: str | None, before_id: str | None,
             base_url: str) -> dict[str, Any]:
        metas = self._metas()
        metas.sort(key=lambda m: (m["created_at"], m["id"]), reverse=True)  # newest first, like the API
        ids = [m["id"] for m in metas]
        if after_id in ids:
            metas = metas[ids.index(after_id) + 1:]
        elif before_id in ids:
            metas = metas[: ids.index(before_id)][-limit:]
        page = [self.public(self._advance(m["id"]), base_url) for m in metas[:limit]]
        return {"data": page, "has_more": len(metas) > limit,
                "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None}

    def cancel(self, batch_id: str, base_url: str) -> dict[str, Any]:
        with self._locked(batch_id):
            meta = self._load(batch_id)
            if meta["processing_status"] == "in_progress":
                now = self._now()
                meta["processing_status"] = "canceling"
                meta["cancel_initiated_at"] = _stamp(now)
                meta["cancel_ends_at"] = _stamp(now + timedelta(
                    seconds=self.state.settings.batch_cancel_delay_s))
                self._save(meta)
        if meta["processing_status"] == "canceling":
            self._schedule(meta)  # outside the file lock: _advance takes the locks in the other order
        return self.public(self._advance(batch_id), base_url)

    def delete(self, batch_id: str) -> dict[str, Any]:
        with self._locked(batch_id):
            meta = self._load(batch_id)
            if meta["processing_status"] != "ended":
                raise invalid(f"Batch {batch_id} cannot be deleted while it is processing; cancel it first")
            for path in self.directory.glob(f"{batch_id}*"):
                if not path.name.endswith(".lock"):
                    path.unlink()
        return {"id": batch_id, "type": "message_batch_deleted"}

    def results(self, batch_id: str) -> bytes:
        meta = self._advance(batch_id)
        if meta["processing_status"] != "ended":
            raise invalid(f"Batch {batch_id} has not finished processing")
        return (self.directory / f"{batch_id}.results.jsonl").read_bytes()

    @staticmethod
    def public(meta: dict[str, Any], base_url: str) -> dict[str, Any]:
        private = ("ends_at", "cancel_ends_at", "betas", "api_version")
        data = {k: v for k, v in meta.items() if k not in private}
        if meta["processing_status"] == "ended":
            data["results_url"] = f"{base_url.rstrip('/')}/v1/messages/batches/{meta['id']}/results"
        return data

    # -- processing --------------------------------------------------------------------------------
    def _locked(self, batch_id: str) -> FileLock:
        return FileLock(str(self.directory / f"{batch_id}.lock"))

    def _advance(self, batch_id: str) -> dict[str, Any]:
        """Moves a batch forward on the simulator's clock: processes it once it is due (its end time, or the
        end of its ``canceling`` phase)."""
        meta = self._load(batch_id)
        if meta["processing_status"] == "ended" or self._now() < self._due_at(meta):
            return meta
        with self._lock, self._locked(batch_id):
            meta = self._load(batch_id)
            if meta["processing_status"] == "ended":
                return meta
            requests = json.loads((self.directory / f"{batch_id}.requests.json").read_text(encoding="utf-8"))
            done = len(requests)
            if meta["processing_status"] == "canceling":
                # Items run in order over the batch's processing time; those done before the cancel stand.
                created, ends = _parse(meta["created_at"]), _parse(meta["ends_at"])
                canceled_at = _parse(meta["cancel_initiated_at"])
                assert created is not None and ends is not None and canceled_at is not None
                span = (ends - created).total_seconds()
                share = 1.0 if span <= 0 else min(1.0, (canceled_at - created).total_seconds() / span)
                done = int(len(requests) * share) if canceled_at < ends else len(requests)
            lines, billable, counts = self._process(batch_id, requests, done=done,
                                                    betas=frozenset(meta.get("betas") or ()),
                                                    api_version=meta.get("api_version") or CURRENT_VERSION)
            # Results first, then the bill: a crash in between bills nothing, never twice.
            order = list(range(len(lines)))
            random.Random(batch_id).shuffle(order)  # results are not in request order
            atomic_write_text(self.directory / f"{batch_id}.results.jsonl",
                              "".join(json.dumps(lines[i]) + "\n" for i in order))
            meta.update(processing_status="ended", ended_at=_stamp(self._now()),
                        request_counts={"processing": 0, **counts})
            self._save(meta)
        with self._timers_lock:
            timer = self._timers.pop(batch_id, None)
        if timer is not None and timer is not threading.current_thread():
            timer.cancel()
        for message, body, custom_id in billable:
            self.state.ledger.bill(request_id=message["_request_id"], model=message["model"], mode="batch",
                                   usage=message["usage"], body=body, batch_id=batch_id, custom_id=custom_id)
        return meta

    def _outcome(self, batch_id: str, custom_id: str) -> str:
        draw = int.from_bytes(hashlib.sha256(f"{batch_id}/{custom_id}".encode()).digest()[:8], "big") / 2**64
        errored = self.state.settings.batch_errored_fraction
        if draw < errored:
            return "errored"
        if draw < errored + self.state.settings.batch_expired_fraction:
            return "expired"
        return "succeeded"

    def _cache_hit_allowed(self, batch_id: str, custom_id: str) -> bool:
        """Best-effort caching: whether this item runs where the cached prefix is readable."""
        material = f"cache/{self.state.settings.seed}/{batch_id}/{custom_id}".encode()
        draw = int.from_bytes(hashlib.sha256(material).digest()[:8], "big") / 2**64
        return draw < self.state.settings.batch_cache_hit_rate

    def _process(self, batch_id: str, requests: _Records, *, done: int, betas: frozenset[str],
                 api_version: str = CURRENT_VERSION) -> tuple[_Records, _Billable, dict[str, int]]:
        lines: list[dict[str, Any]] = []
        billable = []
        counts = {"succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        start = self.state.clock.time()
        context = Context(betas=betas, batch=True, api_version=api_version)
        for position, item in enumerate(requests):
            custom_id, params = item["custom_id"], item["params"]
            # Items run in parallel waves: a cache entry written in one wave is readable from the next.
            wave_start = start + (position // BATCH_PARALLELISM) * 1e-3
            if position >= done:
                result: dict[str, Any] = {"type": "canceled"}
            else:
                outcome = self._outcome(batch_id, custom_id)
                try:
                    if params.get("stream") or params.get("max_tokens") == 0 or "speed" in params:
                        # Facts §2: stream, speed and max_tokens 0 (cache pre-warm) are not allowed.
                        raise invalid("validation error: stream, speed and max_tokens=0 are not allowed in "
                                      "batches")
                    self.state.validate_message_body(params, context)
                except ApiError as error:
                    result = _errored(error.error_type, error.message)
                else:
                    if outcome == "errored":
                        result = _errored("api_error", "Internal server error")
                    elif outcome == "expired":
                        result = {"type": "expired"}
                    else:
                        message = self.state.create_message(params, mode="batch", batch_id=batch_id,
                                                            custom_id=custom_id, bill=False,
                                                            arrived_at=wave_start,
                                                            begins_at=wave_start + 5e-4,
                                                            cache_hit_allowed=self._cache_hit_allowed(
                                                                batch_id, custom_id))
                        billable.append((message, params, custom_id))
                        result = {"type": "succeeded",
                                  "message": {k: v for k, v in message.items() if k != "_request_id"}}
            counts[result["type"]] += 1
            lines.append({"custom_id": custom_id, "result": result})
        return lines, billable, counts


def _errored(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "errored", "error": {"type": "error", "error": {"type": error_type, "message": message},
                                          "request_id": api_id("req_")}}
