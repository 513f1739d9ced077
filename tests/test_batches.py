"""Message Batches: same answers as real time, crash-safe resumption, reconciliation, discount."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.config import BatchSettings
from evalkit.prompts.render import ModelRequest
from evalkit.providers.batching import chunk_items, custom_id_for
from evalkit.sim.app import Ledger
from evalkit.sim.batches import CUSTOM_ID


def configure(project: Path, **values: Any) -> None:
    """Set [simulator] / [batch] keys in the project's evalkit.toml."""
    text = (project / "evalkit.toml").read_text()
    for key, value in values.items():
        lines = text.splitlines()
        for index, line in enumerate(lines):
            if line.split("=")[0].strip() == key:
                lines[index] = f"{key} = {json.dumps(value)}"
                break
        else:
            raise AssertionError(f"{key} not in evalkit.toml")
        text = "\n".join(lines) + "\n"
    (project / "evalkit.toml").write_text(text)


def run(project: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["run", str(project / "tasks" / "triage.yaml"), "-q", *args],
                              catch_exceptions=False)


def summary(project: Path, run_id: str) -> dict[str, Any]:
    return json.loads((project / "reports" / "triage" / run_id / "summary.json").read_text())


def results(project: Path, run_id: str) -> list[dict[str, Any]]:
    path = project / "reports" / "triage" / run_id / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def billed(project: Path) -> list[dict[str, Any]]:
    return Ledger.read(project / ".evalkit" / "simulator" / "billing.jsonl")


@pytest.fixture
def fast(project: Path) -> Path:
    configure(project, batch_delay_s=0.2, poll_initial_s=0.1, poll_max_s=0.5)
    return project


@pytest.mark.e2e
def test_batch_run_gives_the_same_results_as_realtime(tmp_path: Path, project: Path) -> None:
    configure(project, batch_delay_s=0.2, poll_initial_s=0.1, poll_max_s=0.5)
    other = tmp_path / "other"
    import shutil

    shutil.copytree(project, other)
    assert run(project, "-n", "30", "--run-id", "b", "--mode", "batch").exit_code == 0
    assert run(other, "-n", "30", "--run-id", "r", "--mode", "realtime").exit_code == 0
    batch_rows, realtime_rows = results(project, "b"), results(other, "r")
    assert [r["id"] for r in batch_rows] == [r["id"] for r in realtime_rows]
    for b, r in zip(batch_rows, realtime_rows, strict=True):
        for role in ("candidate", "reference"):
            assert b[role]["answer"] == r[role]["answer"]
            assert b[role]["mode"] == "batch" and r[role]["mode"] == "realtime"
            assert b[role]["usage"]["output_tokens"] == r[role]["usage"]["output_tokens"]
    batch_summary, realtime_summary = summary(project, "b"), summary(other, "r")
    assert batch_summary["decision"] == realtime_summary["decision"]
    assert batch_summary["provenance"]["mode"] == "batch"
    assert len(batch_summary["batch"]["answer_batch_ids"]) == 2  # the cache warm-up, then the rest
    cost = batch_summary["cost_usd"]
    assert cost["answers"] == pytest.approx(cost["answers_without_batch_discount"] / 2, abs=2e-6)
    assert realtime_summary["cost_usd"]["batch_savings"] == 0
    assert {entry["mode"] for entry in billed(project)} == {"batch"}
    assert all(entry["usage"]["service_tier"] == "batch" for entry in billed(project))


@pytest.mark.e2e
def test_killed_during_polling_resumes_the_same_batch_and_bills_once(project: Path) -> None:
    # Each batch takes 3 s: ample time to kill the run while it polls (the ledger is checked every 50 ms).
    configure(project, batch_delay_s=3, poll_initial_s=0.2, poll_max_s=0.5)
    process = subprocess.Popen([sys.executable, "-m", "evalkit", "run", "tasks/triage.yaml", "-q", "-n", "20",
                                "--run-id", "killed"], cwd=project, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    ledger_dir = project / ".evalkit" / "batches"
    deadline = time.monotonic() + 60
    batch_id = None
    while batch_id is None:
        assert time.monotonic() < deadline, "the run never recorded its batch"
        assert process.poll() is None, "the run ended before it could be killed"
        for path in ledger_dir.glob("*.json") if ledger_dir.exists() else []:
            record = json.loads(path.read_text())
            if record["state"] == "submitted" and len(record["items"]) > 2:  # the main batch, after warm-up
                batch_id = record["batch_id"]
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (project / "reports" / "triage" / "killed").exists()

    result = run(project, "-n", "20", "--run-id", "resumed")
    assert result.exit_code == 0, result.output
    resumed = summary(project, "resumed")
    assert resumed["batch"]["reattached"] == [batch_id]
    assert resumed["batch"]["submitted_items"] == 0
    assert batch_id in resumed["batch"]["answer_batch_ids"]
    entries = billed(project)
    assert len(entries) == 40  # one request per sample per model, never twice
    assert len({entry["custom_id"] for entry in entries}) == 40


@pytest.mark.e2e
def test_injected_errored_and_expired_items_are_resubmitted_until_answered(fast: Path) -> None:
    # Draws are per (batch id, item); with 8 attempts the chance that an item fails every time is 0.2**8.
    configure(fast, batch_errored_fraction=0.1, batch_expired_fraction=0.1, max_attempts=8)
    result = run(fast, "-n", "30", "--run-id", "faulty")
    assert result.exit_code == 0, result.output
    report = summary(fast, "faulty")
    assert report["batch"]["failed_items"].get("errored", 0) > 0
    assert report["batch"]["failed_items"].get("expired", 0) > 0
    assert report["batch"]["resubmitted_items"] == sum(report["batch"]["failed_items"].values())
    assert report["outcomes"]["candidate"]["error"] == 0 and report["outcomes"]["reference"]["error"] == 0
    assert len(report["batch"]["answer_batch_ids"]) >= 2
    assert len(billed(fast)) == 60  # failed items are not billed; each answer billed once


@pytest.mark.e2e
def test_items_that_keep_failing_are_reported_per_sample_never_dropped(fast: Path) -> None:
    configure(fast, batch_expired_fraction=1.0, max_attempts=2)
    result = run(fast, "-n", "10", "--run-id", "expired")
    # Nothing came back: the run reports every sample, refuses to decide on no evidence, and exits 4 (every
    # request failed: an API failure, docs/ci.md; before issue 16 this exited 7).
    assert result.exit_code == 4 and "INVALID-RUN" in result.output, result.output
    rows = results(fast, "expired")
    assert len(rows) == 10
    for row in rows:
        for role in ("candidate", "reference"):
            assert row[role]["answer"]["outcome"] == "error"
            assert "after 2 batch submission(s)" in row[role]["error"]
    report = summary(fast, "expired")
    assert report["batch"]["given_up"] == 20 and report["batch"]["failed_items"]["expired"] == 40
    assert billed(fast) == []


@pytest.mark.e2e
def test_fallback_realtime_finishes_what_batches_could_not(fast: Path) -> None:
    configure(fast, batch_expired_fraction=1.0, max_attempts=1)
    result = run(fast, "-n", "10", "--run-id", "fallback", "--fallback", "realtime")
    assert result.exit_code == 0, result.output
    report = summary(fast, "fallback")
    assert report["batch"]["fallback_realtime"] == 20
    assert report["outcomes"]["candidate"]["error"] == 0
    assert {entry["mode"] for entry in billed(fast)} == {"realtime"}


@pytest.mark.e2e
def test_max_wait_leaves_a_resumable_state_with_a_clear_message(project: Path) -> None:
    configure(project, batch_delay_s=3, poll_initial_s=0.2, poll_max_s=0.3)
    first = CliRunner().invoke(main, ["run", str(project / "tasks" / "triage.yaml"), "-q", "-n", "10",
                                      "--max-wait", "0.5"])
    assert first.exit_code == 5
    assert "still processing" in first.output and "run the same command again" in first.output
    pending = [json.loads(p.read_text())["batch_id"]
               for p in (project / ".evalkit" / "batches").glob("*.json")]
    assert pending and pending[0] in first.output
    time.sleep(3)
    second = run(project, "-n", "10", "--run-id", "later")
    assert second.exit_code == 0
    later = summary(project, "later")
    assert later["batch"]["reattached"] == pending and later["batch"]["resubmitted_items"] == 0
    assert len(billed(project)) == 20


def test_custom_ids_are_valid_and_unique() -> None:
    ids = set()
    for sample_id in ["t0001", "weird id/with:chars" * 5, "ü-ñ", "x"]:
        for role in ("candidate", "reference"):
            request = ModelRequest(sample_id=sample_id, role=role, params={})
            custom_id = custom_id_for(request, f"{abs(hash((sample_id, role))):064x}")
            assert CUSTOM_ID.match(custom_id), custom_id
            ids.add(custom_id)
    assert len(ids) == 8


def test_chunking_respects_request_and_byte_limits() -> None:
    items = [(f"c{i}", {"model": "m", "text": "x" * 1000}) for i in range(25)]
    by_count = chunk_items(items, BatchSettings(max_requests=10))
    assert [len(chunk) for chunk in by_count] == [10, 10, 5]
    by_bytes = chunk_items(items, BatchSettings(max_bytes=5_000))
    assert all(len(json.dumps({"requests": [{"custom_id": c, "params": p} for c, p in chunk]})) <= 5_000
               for chunk in by_bytes)
    assert sum(len(chunk) for chunk in by_bytes) == 25 and len(by_bytes) > 5


def test_by_default_a_large_run_is_submitted_in_bodies_small_enough_to_build_in_memory() -> None:
    """20,000 triage-sized requests (~50 MB): one body would need ~500 MB to submit through the SDK."""
    params = {"model": "claude-haiku-5-5", "max_tokens": 1024, "system": "s" * 1500,
              "messages": [{"role": "user", "content": "t" * 1000}]}
    items = [(f"c{i}", params) for i in range(20_000)]
    chunks = chunk_items(items, BatchSettings())
    # As the SDK encodes the body: compact separators, UTF-8.
    sizes = [len(json.dumps({"requests": [{"custom_id": c, "params": p} for c, p in chunk]},
                            separators=(",", ":"), ensure_ascii=False).encode()) for chunk in chunks]
    assert len(chunks) >= 10 and max(sizes) <= 5_000_000 and sum(map(len, chunks)) == 20_000


@pytest.mark.e2e
def test_a_batch_created_just_before_a_crash_is_found_and_adopted(fast: Path) -> None:
    """Killed after the create call reached the API but before its id was recorded."""
    import asyncio
    import uuid
    from datetime import UTC, datetime

    from evalkit.backends import connect
    from evalkit.config import load_settings
    from evalkit.providers.batching import BatchLedger, LedgerRecord
    from evalkit.providers.response_cache import request_key
    from evalkit.run.session import batch_ledger_dir
    from tests.conftest import prepared_task as prepare

    settings = load_settings(fast)
    prepared = prepare(fast / "tasks" / "triage.yaml", sample_size=10, settings=settings)
    backend = connect(settings, offline=True)
    endpoint = backend.provider.endpoint
    keys = {custom_id_for(r, request_key(endpoint, r)): request_key(endpoint, r) for r in prepared.requests}
    ledger = BatchLedger(batch_ledger_dir(settings))
    record = LedgerRecord(record_id=uuid.uuid4().hex, endpoint=endpoint, state="submitting",
                          created_at=datetime.now(UTC).isoformat(), attempt=1, items=keys)
    ledger.write(record)
    params = {r.sample_id + r.role: r.params for r in prepared.requests}
    items = [(cid, params[r.sample_id + r.role]) for r in prepared.requests
             for cid in [custom_id_for(r, request_key(endpoint, r))]]
    info = asyncio.run(backend.provider.submit_batch(items))  # the create that "crashed"

    result = run(fast, "-n", "10", "--run-id", "adopted")
    assert result.exit_code == 0, result.output
    report = summary(fast, "adopted")
    assert report["batch"]["reattached"] == [info.id] and report["batch"]["submitted_items"] == 0
    assert len(billed(fast)) == 20
