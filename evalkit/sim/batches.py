"""The simulator's Message Batches: create, retrieve, list, cancel, delete, results (JSONL).

Batches live on disk in the simulator's state folder, like on the real API's servers: an evalkit process
killed mid-poll and started again (with a fresh in-process simulator) finds its batch where it left it.
A batch ends ``batch_delay_s`` after creation; it is processed on the first look after that, and its
results file is written before anything is billed, so no item is ever billed twice.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from filelock import FileLock

from evalkit._io import atomic_write_json, atomic_write_text
from evalkit.sim.wire import ApiError, api_id, invalid

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_REQUESTS = 100_000
MAX_BYTES = 256 * 1024 * 1024
#: How many items of a batch the simulator runs side by side (they cannot read each other's cache writes).
BATCH_PARALLELISM = 16

# Spelled at module level: inside BatchStore the name `list` is its list() method.
_Records = list[dict[str, Any]]
_Billable = list[tuple[dict[str, Any], dict[str, Any], str]]  # (message, request body, custom_id)


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z") if moment else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


class BatchStore:
    """Batches of one simulator, persisted under ``<state_dir>/batches/``."""

    def __init__(self, state: Any, directory: Path) -> None:
        self.state = state  # SimulatorState (answers and bills)
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

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
    def create(self, body: Any, raw_size: int, new_id: str) -> dict[str, Any]:
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
        created = _now()
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
        }
        atomic_write_json(self.directory / f"{new_id}.requests.json", requests)
        self._save(meta)
        return meta

    def retrieve(self, batch_id: str, base_url: str) -> dict[str, Any]:
        meta = self._advance(batch_id)
        return self.public(meta, base_url)

    def list(self, *, limit: int, after_id: str | None, before_id: str | None,
             base_url: str) -> dict[str, Any]:
        metas = [json.loads(p.read_text(encoding="utf-8")) for p in self.directory.glob("msgbatch_*.json")
                 if not p.name.endswith(".requests.json")]
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
                meta["processing_status"] = "canceling"
                meta["cancel_initiated_at"] = _stamp(_now())
                self._save(meta)
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
        data = {k: v for k, v in meta.items() if k != "ends_at"}
        if meta["processing_status"] == "ended":
            data["results_url"] = f"{base_url.rstrip('/')}/v1/messages/batches/{meta['id']}/results"
        return data

    # -- processing --------------------------------------------------------------------------------
    def _locked(self, batch_id: str) -> FileLock:
        return FileLock(str(self.directory / f"{batch_id}.lock"))

    def _advance(self, batch_id: str) -> dict[str, Any]:
        """Moves a batch forward in time: processes it once its end time has come (or it was canceled)."""
        meta = self._load(batch_id)
        if meta["processing_status"] == "ended":
            return meta
        due = _now() >= _parse(meta["ends_at"])  # type: ignore[operator]
        if not due and meta["processing_status"] != "canceling":
            return meta
        with self._lock, self._locked(batch_id):
            meta = self._load(batch_id)
            if meta["processing_status"] == "ended":
                return meta
            requests = json.loads((self.directory / f"{batch_id}.requests.json").read_text(encoding="utf-8"))
            canceled = meta["processing_status"] == "canceling"
            lines, billable, counts = self._process(batch_id, requests, canceled=canceled and not due)
            # Results first, then the bill: a crash in between bills nothing, never twice.
            order = list(range(len(lines)))
            random.Random(batch_id).shuffle(order)  # results are not in request order
            atomic_write_text(self.directory / f"{batch_id}.results.jsonl",
                              "".join(json.dumps(lines[i]) + "\n" for i in order))
            meta.update(processing_status="ended", ended_at=_stamp(_now()),
                        request_counts={"processing": 0, **counts})
            self._save(meta)
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

    def _process(self, batch_id: str, requests: _Records, *, canceled: bool
                 ) -> tuple[_Records, _Billable, dict[str, int]]:
        lines: list[dict[str, Any]] = []
        billable = []
        counts = {"succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        start = time.monotonic()
        for position, item in enumerate(requests):
            custom_id, params = item["custom_id"], item["params"]
            # Items run in parallel waves: a cache entry written in one wave is readable from the next.
            wave_start = start + (position // BATCH_PARALLELISM) * 1e-3
            if canceled:
                result: dict[str, Any] = {"type": "canceled"}
            else:
                outcome = self._outcome(batch_id, custom_id)
                try:
                    if params.get("stream") or params.get("max_tokens") == 0:
                        raise invalid("validation error: streaming and max_tokens=0 are not allowed in "
                                      "batches")
                    self.state.validate_message_body(params)
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
                                                            begins_at=wave_start + 5e-4)
                        billable.append((message, params, custom_id))
                        result = {"type": "succeeded",
                                  "message": {k: v for k, v in message.items() if k != "_request_id"}}
            counts[result["type"]] += 1
            lines.append({"custom_id": custom_id, "result": result})
        return lines, billable, counts


def _errored(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "errored", "error": {"type": "error", "error": {"type": error_type, "message": message},
                                          "request_id": api_id("req_")}}
