"""The PostgreSQL store itself, against a real server (no simulator: the fast tier): schema migration and
verification, answers shared between two cache folders, claims that expire when their runner dies, the
batch ledger in the store, and a password that never reaches a message."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.config import load_settings
from evalkit.errors import ConfigError, EvalkitError
from evalkit.providers.base import ModelResponse
from evalkit.providers.batching import BatchLedger, LedgerRecord
from evalkit.providers.response_cache import ResponseCache
from evalkit.store import PostgresStore, open_store
from tests.postgres_server import PASSWORD


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_store_migrate_and_verify(project: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    monkeypatch.setenv("EVALKIT_STORE", store_url)
    code, out = _cli("store", "migrate")
    assert code == 0 and "schema created at version 1" in out, out
    code, out = _cli("store", "migrate")
    assert code == 0 and "nothing to do" in out
    code, out = _cli("store", "verify")
    assert code == 0 and "everything is intact" in out and "evalkit_responses: 0 rows" in out, out
    assert PASSWORD not in out and "REDACTED@127.0.0.1" in out


def test_store_verify_without_a_store_says_how_to_set_one(project: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    code, out = _cli("store", "verify")
    assert code == 2 and "no shared store is configured" in out and "EVALKIT_STORE" in out


def test_a_wrong_password_is_an_actionable_error_without_the_password(
        project: Path, postgres_server: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    wrong = "Wr0ng-pass-xyz"
    monkeypatch.setenv("EVALKIT_STORE", postgres_server.url(password=wrong))  # type: ignore[attr-defined]
    code, out = _cli("store", "verify")
    assert code == 2 and "password authentication failed" in out
    assert wrong not in out and PASSWORD not in out
    code, out = _cli("cache", "verify")  # the response cache opens the store as a run does
    assert code == 2 and "shared store" in out and wrong not in out and "hint:" in out, out


def test_a_store_url_that_is_not_postgresql_is_refused(project: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKIT_STORE", "mysql://u:topsecret@db/x")
    with pytest.raises(ConfigError) as caught:
        open_store(load_settings(project))
    assert "topsecret" not in str(caught.value) and "postgresql://" in str(caught.value)
    settings = load_settings(project)
    assert "topsecret" not in repr(settings) and "topsecret" not in settings.model_dump_json()


def test_two_cache_folders_on_one_store_share_every_answer(tmp_path: Path, store_url: str) -> None:
    store_a, store_b = PostgresStore(store_url), PostgresStore(store_url)
    try:
        one = ResponseCache(tmp_path / "a", store=store_a)
        two = ResponseCache(tmp_path / "b", store=store_b)
        response = ModelResponse(message={"content": [{"type": "text", "text": "hi"}], "usage": {}},
                                 simulated=True)
        assert two.get_key("k1") is None
        one.put_key("k1", response)
        assert two.get_key("k1") == response and len(two) == 1
        assert not (tmp_path / "b" / "responses").exists()  # nothing local: the store holds the answers
        assert two.verify().ok and two.verify().entries == 1
        # The claim to fetch a request: one machine at a time.
        claim_a, claim_b = one.claim("k2"), two.claim("k2")
        assert claim_a.try_acquire() and not claim_b.try_acquire()
        claim_a.release()
        assert claim_b.try_acquire()
        claim_b.release()
    finally:
        store_a.close()
        store_b.close()


def test_a_damaged_stored_answer_is_found_by_verify(tmp_path: Path, store_url: str) -> None:
    store = PostgresStore(store_url)
    try:
        cache = ResponseCache(tmp_path / "a", store=store)
        cache.put_key("k", ModelResponse(message={"content": [], "usage": {}}))
        store.put_response("k", json.dumps({"format": 2, "sha256": "0" * 64, "value": {"message": {}}}))
        with pytest.raises(EvalkitError) as caught:
            cache.get_key("k")
        assert "damaged response cache entry" in str(caught.value) and PASSWORD not in str(caught.value)
        assert cache.verify().damaged == ["k"]
    finally:
        store.close()


CLAIMER = """
import sys, time
from evalkit.store import PostgresStore
store = PostgresStore(sys.argv[1], claim_ttl_s=float(sys.argv[2]))
assert store.try_claim("batch-submit")
print("held", flush=True)
time.sleep(600)
"""


def test_a_dead_runners_claim_expires_and_a_live_one_is_renewed(store_url: str) -> None:
    ttl = 1.5
    runner = subprocess.Popen([sys.executable, "-c", CLAIMER, store_url, str(ttl)], stdout=subprocess.PIPE,
                              text=True)
    other = PostgresStore(store_url, claim_ttl_s=ttl)
    try:
        assert runner.stdout is not None and runner.stdout.readline().strip() == "held"
        runner.stdout.close()
        assert not other.try_claim("batch-submit")
        time.sleep(2 * ttl)  # longer than its time to live: the live holder renewed it
        assert not other.try_claim("batch-submit")
        holder = other.claim_holder("batch-submit")
        assert holder is not None and not holder[1]
        runner.kill()  # the runner dies without releasing anything
        runner.wait(timeout=30)
        started = time.monotonic()
        other.claim("batch-submit", poll_s=0.1, timeout_s=10 * ttl)
        waited = time.monotonic() - started
        assert waited <= ttl + 1.0, waited
        assert other.claim_holder("batch-submit") == (other.holder, False)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(timeout=30)
        other.close()


def test_the_batch_ledger_in_the_store_is_shared_and_journaled(tmp_path: Path, store_url: str) -> None:
    store = PostgresStore(store_url)
    try:
        one, two = BatchLedger(tmp_path / "a", store), BatchLedger(tmp_path / "b", store)
        record = LedgerRecord(record_id="ab" * 16, endpoint="sim", state="submitting",
                              created_at="2026-01-01T00:00:00+00:00", attempt=1, items={"c1": "k1"})
        one.write(record)
        record.state, record.batch_id = "submitted", "msgbatch_1"
        one.write(record)
        assert [r.batch_id for r in two.records("sim")] == ["msgbatch_1"]
        assert two.read(record.record_id).state == "submitted" and not list((tmp_path / "b").glob("*.json"))
        # A damaged row stops the run with where it is and the fix; repair restores it from the journal.
        store.restore_batch_record(record.record_id, "sim", "submitted", "{not json")
        with pytest.raises(EvalkitError) as caught:
            two.records("sim")
        assert "damaged batch ledger record" in str(caught.value)
        assert two.verify() and any("restored" in line for line in two.repair())
        assert two.read(record.record_id).batch_id == "msgbatch_1" and not two.verify()
        third = PostgresStore(store_url)
        with two.lock():
            assert not third.try_claim("batch-submit")
        assert third.try_claim("batch-submit")
        third.close()
    finally:
        store.close()
