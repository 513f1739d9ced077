"""Damaged state through the command line: a clear error with the file and the fix, exit 2, no traceback,
and nothing paid again (issue 16, items 4 and 5)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from tests.test_batches import billed, configure, run

pytestmark = pytest.mark.e2e


def test_a_damaged_cache_db_stops_the_run_and_repair_keeps_what_it_can(project: Path) -> None:
    # 20 samples: enough for a run that can decide (at 5 the reference is not shown better than chance)
    assert run(project, "-n", "20", "--mode", "realtime", "--run-id", "a").exit_code == 0
    database = project / ".evalkit" / "cache" / "responses" / "cache.db"
    database.write_bytes(os.urandom(8192))
    stopped = run(project, "-n", "20", "--mode", "realtime", "--run-id", "b")
    assert stopped.exit_code == 2 and str(database) in stopped.output
    assert "evalkit cache repair" in stopped.output and "Traceback" not in stopped.output
    assert len(billed(project)) == 40  # nothing was sent

    verify = CliRunner().invoke(main, ["cache", "verify", str(project / "tasks" / "triage.yaml")])
    assert verify.exit_code == 2 and "cannot be read" in verify.output
    repair = CliRunner().invoke(main, ["cache", "repair", str(project / "tasks" / "triage.yaml")])
    assert repair.exit_code == 0 and "rebuilt" in repair.output, repair.output
    assert CliRunner().invoke(main, ["cache", "verify", str(project)]).exit_code == 0


def test_a_ledger_record_with_unexpected_keys_is_an_error_not_skipped(project: Path) -> None:
    configure(project, batch_delay_s=0.2, poll_initial_s=0.1, poll_max_s=0.3)
    assert run(project, "-n", "20", "--run-id", "a").exit_code == 0
    record = sorted((project / ".evalkit" / "batches").glob("*.json"))[0]
    record.write_text(json.dumps({**json.loads(record.read_text()), "owner": "someone else"}))
    stopped = run(project, "-n", "24", "--run-id", "b")
    assert stopped.exit_code == 2 and "unexpected keys owner" in stopped.output
    assert str(record) in stopped.output and "Traceback" not in stopped.output
    assert len(billed(project)) == 40  # the new samples were not submitted either
