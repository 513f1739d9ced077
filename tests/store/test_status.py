"""`evalkit status` reads the batch ledger from the shared store: a batch one machine submitted is listed
on another machine's checkout (its own .evalkit/, nothing local), and not without the store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.api import batch_status
from evalkit.cli import main
from tests.postgres_server import PASSWORD
from tests.test_batches import configure, run


@pytest.mark.e2e
def test_status_on_a_second_machine_lists_the_batch_the_first_one_submitted(
        project: Path, tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(project, batch_delay_s=1, poll_initial_s=0.2, poll_max_s=0.3)
    other = tmp_path / "other-machine"
    shutil.copytree(project, other)  # before anything ran: no local ledger, cache or simulator state
    monkeypatch.setenv("EVALKIT_STORE", store_url)

    detached = run(project, "-n", "10", "--detach", "--run-id", "first")
    assert detached.exit_code == 0, detached.output
    (submitted,) = [f for f in batch_status(project, ask_api=False) if not f.warmup]
    assert submitted.batch_id is not None and submitted.requests == 18

    seen = [f for f in batch_status(other, ask_api=False) if not f.warmup]
    assert [(f.batch_id, f.task, f.requests, f.models) for f in seen] == [
        (submitted.batch_id, "triage", 18, submitted.models)]
    listed = CliRunner().invoke(main, ["status", str(other), "--no-api"])
    assert listed.exit_code == 0, listed.output
    assert submitted.batch_id in listed.output and "claude-haiku-5-5 ×9" in listed.output
    assert PASSWORD not in listed.output
    assert not [path for path in (other / ".evalkit").rglob("*") if path.is_file()]  # nothing local

    monkeypatch.delenv("EVALKIT_STORE")  # the second machine alone knows of no batch
    alone = CliRunner().invoke(main, ["status", str(other), "--no-api"])
    assert alone.exit_code == 0 and "no batches in flight" in alone.output
