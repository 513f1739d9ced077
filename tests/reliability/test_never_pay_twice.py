"""The four ways evalkit used to pay twice without a word (issue 16), each reproduced against the simulator
and counted at its billing ledger after every batch it holds has been processed:

* a batch create that answers 504 after the upstream created the batch (the SDK retried the create);
* a realtime response slower than the request timeout (the SDK timed out and retried; both are billed);
* two realtime runs of the same task sharing one cache (each paid for everything);
* a damaged batch-ledger record (silently skipped, and its batch submitted again).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.sim.app import Ledger
from tests.conftest import serve_simulator
from tests.test_batches import billed, configure, run, summary

pytestmark = pytest.mark.e2e


def set_keys(project: Path, section: str, **values: Any) -> None:
    """Set ``key = value`` lines in ``[section]`` of the project's evalkit.toml (added when missing)."""
    lines = (project / "evalkit.toml").read_text().splitlines()
    header = f"[{section}]"
    if header not in lines:
        lines += ["", header]
    start = lines.index(header) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("[")), len(lines))
    for key, value in values.items():
        line = f"{key} = {json.dumps(value)}"
        found = [i for i in range(start, end) if lines[i].split("=")[0].strip() == key]
        if found:
            lines[found[0]] = line
        else:
            lines.insert(start, line)
            end += 1
    (project / "evalkit.toml").write_text("\n".join(lines) + "\n")


def double_billed(entries: list[dict[str, Any]]) -> int:
    """Requests the simulator billed more than once (the same request body, billed again)."""
    return sum(count - 1 for count in Counter(e["body_sha256"] for e in entries).values() if count > 1)


def process_every_batch(state_dir: Path, delay_s: float) -> None:
    """Let every batch the in-process simulator holds end and be billed, orphans included: the simulator
    bills a batch when it is looked at, and nobody looks at a batch nobody knows about."""
    from evalkit.config import SimulatorSettings
    from evalkit.sim.app import SimulatorState

    time.sleep(delay_s)
    state = SimulatorState(SimulatorSettings(batch_delay_s=delay_s), root=Path.cwd(), state_dir=state_dir)
    for path in (state_dir / "batches").glob("msgbatch_*.json"):
        if not path.name.endswith(".requests.json"):
            state.batches.retrieve(path.stem, "http://sim")


def test_a_batch_create_that_answers_504_after_creating_the_batch_is_paid_once(project: Path) -> None:
    configure(project, batch_delay_s=0.2, poll_initial_s=0.1, poll_max_s=0.3)
    # Every create reaches the upstream and creates its batch; the answer is lost on the way back.
    set_keys(project, "simulator.faults", after_create=1.0, endpoints=["batch_create"])
    result = run(project, "-n", "10", "--run-id", "c")
    assert result.exit_code == 0, result.output
    process_every_batch(project / ".evalkit" / "simulator", 0.2)
    entries = billed(project)
    assert double_billed(entries) == 0 and len(entries) == 20
    report = summary(project, "c")
    assert report["outcomes"]["candidate"]["error"] == 0 and report["batch"]["submitted_items"] == 20


def _served_run(project: Path, tmp_path: Path, *args: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    state, log = tmp_path / "state", tmp_path / "server.log"
    server, port = serve_simulator(project, state, log)
    try:
        env = {**os.environ, "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}", "ANTHROPIC_API_KEY": "k"}
        done = subprocess.run([sys.executable, "-m", "evalkit", "run", "tasks/triage.yaml", "-q", "-n", "12",
                               "--mode", "realtime", "--run-id", "slow", *args], cwd=project, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        time.sleep(2)  # abandoned attempts finish (and are billed) on the server
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_simulator/stats") as response:
            stats = json.load(response)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return stats, Ledger.read(state / "billing.jsonl")


@pytest.mark.slow
def test_responses_slower_than_the_configured_timeout_are_not_cut_off(project: Path, tmp_path: Path) -> None:
    # 1.5 s answers against a 1 s request_timeout_s: the timeout is sized to the request (its max_tokens)
    # as the SDK sizes its own, so nothing is abandoned and retried.
    configure(project, request_timeout_s=1, concurrency=4)
    set_keys(project, "simulator.faults", slow=0.4, slow_ms=1500)
    stats, entries = _served_run(project, tmp_path)
    assert stats["faults_injected"].get("slow", 0) > 0
    assert double_billed(entries) == 0 and len(entries) == 24
    assert summary(project, "slow")["execution"]["possibly_billed_twice"] == 0


@pytest.mark.slow
def test_every_retry_after_a_timeout_is_counted_and_concurrency_stays_bounded(project: Path,
                                                                              tmp_path: Path) -> None:
    # A timeout that really is shorter than the answer: each timed-out attempt is billed by the server
    # and retried. evalkit cannot prevent that (the API has no idempotency key), but it counts every one
    # as possibly billed twice, and the abandoned attempt keeps its concurrency slot.
    configure(project, request_timeout_s=1, concurrency=4, max_retries=6)
    set_keys(project, "evalkit", timeout_per_output_token_s=0)
    set_keys(project, "simulator.faults", slow=0.3, slow_ms=1500)
    stats, entries = _served_run(project, tmp_path)
    record = summary(project, "slow")
    extra = double_billed(entries)
    assert extra > 0 and record["execution"]["possibly_billed_twice"] == extra  # none of it silent
    assert stats["max_in_flight"] <= 4
    cost = record["cost_usd"]
    assert cost["this_run_upper_bound"] > cost["this_run"] > 0


def test_two_realtime_runs_sharing_a_cache_pay_once(project: Path) -> None:
    configure(project, latency_ms=30, concurrency=4)
    command = [sys.executable, "-m", "evalkit", "run", "tasks/triage.yaml", "-q", "-n", "30", "--mode",
               "realtime"]
    processes = [subprocess.Popen([*command, "--run-id", name], cwd=project, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE) for name in ("a", "b")]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err.decode()
    entries = billed(project)
    assert double_billed(entries) == 0 and len(entries) == 60
    shared = [summary(project, name)["execution"] for name in ("a", "b")]
    assert sum(e["requests_sent"] for e in shared) == 60


def test_a_damaged_ledger_record_stops_the_run_with_its_fix_and_is_never_paid_again(project: Path) -> None:
    configure(project, batch_delay_s=1.5, poll_initial_s=0.1, poll_max_s=0.3)
    first = CliRunner().invoke(main, ["run", str(project / "tasks" / "triage.yaml"), "-q", "-n", "10",
                                      "--max-wait", "0"])
    assert first.exit_code == 5, first.output
    [record] = [p for p in (project / ".evalkit" / "batches").glob("*.json")]
    record.write_text(record.read_text()[:40])  # truncated, as by a full disk or a crash of the file system

    stopped = run(project, "-n", "10", "--run-id", "x")
    assert stopped.exit_code == 2, stopped.output
    assert str(record) in stopped.output and "evalkit cache repair" in stopped.output
    assert "Traceback" not in stopped.output

    repaired = CliRunner().invoke(main, ["cache", "repair", str(project / "tasks" / "triage.yaml")])
    assert repaired.exit_code == 0, repaired.output
    again = run(project, "-n", "10", "--run-id", "y")
    assert again.exit_code == 0, again.output
    assert summary(project, "y")["batch"]["reattached"]
    process_every_batch(project / ".evalkit" / "simulator", 1.5)
    entries = billed(project)
    assert double_billed(entries) == 0 and len(entries) == 20
