"""Long batches you can leave: `evalkit run --detach` submits and returns, `evalkit status` says how far
each batch is (task, models, requests done, age, ETA), and the same `evalkit run` collects (issue 21,
part 4)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.api import batch_status
from evalkit.cli import main
from evalkit.providers.base import BatchInfo
from evalkit.providers.batching import LedgerRecord
from evalkit.run.status import _entry
from tests.test_batches import billed, configure, run, summary


def _record(age_s: float, items: int) -> LedgerRecord:
    created = (datetime.now(UTC) - timedelta(seconds=age_s)).isoformat()
    return LedgerRecord(record_id="r", endpoint="e", state="submitted", created_at=created, attempt=1,
                        items={f"c{i}": f"k{i}" for i in range(items)}, batch_id="b", task="triage",
                        models={"m": items})


def test_the_eta_extrapolates_the_rate_so_far_and_is_unknown_before_any_result() -> None:
    now = datetime.now(UTC)
    quarter = _entry(_record(100, 40), BatchInfo("b", "in_progress", {"processing": 30, "succeeded": 8,
                                                                     "errored": 2}), None, now)
    assert quarter.done == 10 and quarter.progress == "10/40"
    assert quarter.eta_s == pytest.approx(300, rel=0.02)  # 10 in 100 s: 30 more take 300 s
    nothing = _entry(_record(100, 40), BatchInfo("b", "in_progress", {"processing": 40}), None, now)
    assert nothing.done == 0 and nothing.eta_s is None
    ended = _entry(_record(100, 40), BatchInfo("b", "ended", {"succeeded": 40}), None, now)
    assert ended.eta_s == 0 and ended.status == "ended"
    unasked = _entry(_record(100, 40), None, None, now)
    assert unasked.progress == "?" and unasked.status is None and unasked.task == "triage"


def test_detach_needs_batch_mode(project: Path) -> None:
    result = CliRunner().invoke(main, ["run", str(project / "tasks" / "triage.yaml"), "--detach",
                                       "--mode", "realtime"])
    assert result.exit_code == 2 and "--detach needs --mode batch" in result.output


@pytest.mark.e2e
def test_a_detached_batch_is_listed_with_its_progress_and_collected_by_the_next_run(project: Path) -> None:
    configure(project, batch_delay_s=4, poll_initial_s=0.2, poll_max_s=0.3)
    started = time.monotonic()
    detached = run(project, "-n", "10", "--detach", "--run-id", "first")
    assert detached.exit_code == 0, detached.output
    assert "submitted: batch(es) msgbatch_" in detached.output and "evalkit status" in detached.output
    assert not (project / "reports" / "triage" / "first").exists()  # nothing decided yet

    flights = batch_status(project / "tasks" / "triage.yaml")
    if time.monotonic() - started < 4:  # still processing (the simulator's batches take 4 s)
        assert [f.status for f in flights] == ["in_progress"]
    (main_batch,) = [f for f in flights if not f.warmup]
    assert main_batch.task == "triage" and main_batch.batch_id is not None
    assert sum(main_batch.models.values()) == main_batch.requests == 18  # the warm-up wrote 2 prefixes
    assert set(main_batch.models) == {"claude-haiku-5-5", "claude-sonnet-5-5"}

    listed = CliRunner().invoke(main, ["status", str(project), "--no-api"])
    assert listed.exit_code == 0 and main_batch.batch_id in listed.output and "triage" in listed.output
    assert "claude-haiku-5-5 ×9" in listed.output

    deadline = time.monotonic() + 60
    while (ended := batch_status(project)[0]).status != "ended" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ended.status == "ended" and ended.eta_s == 0 and ended.done == 18
    assert "collects its answers" in str(ended.note)

    collected = run(project, "-n", "10", "--run-id", "later")
    assert collected.exit_code == 0, collected.output
    later = summary(project, "later")
    assert later["batch"]["reattached"] == [main_batch.batch_id] and later["batch"]["resubmitted_items"] == 0
    assert len(billed(project)) == 20  # 10 samples x 2 models, each paid once
    assert CliRunner().invoke(main, ["status", str(project)]).output.strip() == "no batches in flight"
