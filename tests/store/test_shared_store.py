"""The shared store against a real PostgreSQL server (tests/postgres_server.py): two runners on two
separate cache folders, started at the same moment against one served simulator, pay each answer once and
submit one batch; a dead runner's claim expires; the password never appears in what evalkit writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from evalkit.sim.app import Ledger
from tests.conftest import serve_simulator
from tests.postgres_server import PASSWORD
from tests.test_batches import configure


def _runner(project: Path, env: dict[str, str], run_id: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "evalkit", "run", "tasks/triage.yaml", "-q", "-n", "12",
                             "--run-id", run_id, *args], cwd=project, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _two_runners_at_once(project: Path, tmp_path: Path, store: str, *args: str
                         ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """Two copies of the project (own .evalkit/ each), one store, one served simulator, started together.
    Returns (both summaries, what the simulator billed, both outputs)."""
    other = tmp_path / "other"
    shutil.copytree(project, other)
    state, log = tmp_path / "sim-state", tmp_path / "sim.log"
    server, port = serve_simulator(project, state, log)
    try:
        env = {**os.environ, "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}", "ANTHROPIC_API_KEY": "k",
               "EVALKIT_STORE": store}
        runners = [_runner(project, env, "a", *args), _runner(other, env, "b", *args)]
        outputs = [runner.communicate(timeout=600)[0] for runner in runners]
        for runner, output in zip(runners, outputs, strict=True):
            assert runner.returncode == 0, output
        time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)
    summaries = [json.loads((root / "reports" / "triage" / run_id / "summary.json").read_text())
                 for root, run_id in ((project, "a"), (other, "b"))]
    return summaries, Ledger.read(state / "billing.jsonl"), outputs


@pytest.mark.e2e
@pytest.mark.slow
def test_two_realtime_runners_on_separate_caches_pay_each_answer_once(project: Path, tmp_path: Path,
                                                                      store_url: str) -> None:
    configure(project, latency_ms=20)
    summaries, billed, outputs = _two_runners_at_once(project, tmp_path, store_url, "--mode", "realtime")
    sent = [s["execution"]["requests_sent"] for s in summaries]
    # 12 samples × (candidate + reference) = 24 distinct requests, paid once between the two runners.
    assert len(billed) == 24, (sent, len(billed))
    assert sum(sent) == 24
    assert all(s["execution"]["cache_hits"] + s["execution"]["requests_sent"]
               + s["execution"].get("shared_with_other_runs", 0) >= 24 for s in summaries)
    assert summaries[0]["decision"]["verdict"] == summaries[1]["decision"]["verdict"]
    for text in [*outputs, *(json.dumps(s) for s in summaries)]:
        assert PASSWORD not in text


@pytest.mark.e2e
@pytest.mark.slow
def test_two_batch_runners_started_at_once_submit_one_batch(project: Path, tmp_path: Path,
                                                            store_url: str) -> None:
    configure(project, batch_delay_s=1.0, poll_initial_s=0.1, poll_max_s=0.3)
    summaries, billed, outputs = _two_runners_at_once(project, tmp_path, store_url, "--mode", "batch")
    batch_ids = {b for s in summaries for b in s["batch"]["batch_ids"]}
    submitted = [s["batch"]["submitted_items"] for s in summaries]
    assert sum(submitted) == 24, submitted  # every request submitted once, by one of the two runners
    assert len(billed) == 24
    # One warm-up batch and one main batch, shared: the second runner re-attached to the first's.
    created = {e.get("batch_id") for e in billed if e.get("batch_id")}
    assert batch_ids == created and len(created) <= 2, (batch_ids, created)
    assert any(s["batch"]["reattached"] for s in summaries)
    for text in outputs:
        assert PASSWORD not in text
