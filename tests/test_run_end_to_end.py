"""`evalkit run` end to end on the simulator, through the real SDK path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.sim.app import Ledger
from tests.conftest import serve_simulator
from tests.test_batches import configure

pytestmark = pytest.mark.e2e


def _run(project: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    result = CliRunner().invoke(main, ["run", str(project / "tasks" / "triage.yaml"), "--quiet", *args],
                                env=env, catch_exceptions=False)
    return result


def _summary(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "summary.json").read_text())


def _ledger(project: Path) -> list[dict[str, Any]]:
    return Ledger.read(project / ".evalkit" / "simulator" / "billing.jsonl")


def test_run_writes_report_folder_and_rerun_costs_nothing(project: Path) -> None:
    configure(project, batch_delay_s=0.2, poll_initial_s=0.1, poll_max_s=0.5)  # batch mode, without the wait
    first = _run(project, "-n", "40", "--run-id", "first")
    assert first.exit_code == 0, first.output
    assert "SIMULATED" in first.output
    folder = project / "reports" / "triage" / "first"
    assert {p.name for p in folder.iterdir()} == {"report.html", "summary.json", "results.jsonl"}

    summary = _summary(folder)
    assert (summary["provenance"]["simulated"] is True
            and summary["provenance"]["backend"]["kind"] == "simulator")
    assert summary["execution"]["requests_sent"] == 80 and summary["execution"]["cache_hits"] == 0
    assert summary["dataset"]["sample_size"] == 40
    assert summary["decision"]["verdict"] in {"GO", "NO-GO", "INCONCLUSIVE"}
    assert summary["cost_usd"]["this_run"] == summary["cost_usd"]["answers"] > 0
    assert len(_ledger(project)) == 80  # the simulated API billed one request per sample per model

    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 40 and len({row["id"] for row in rows}) == 40
    for row in rows:
        assert row["input_hash"] and row["gold"]
        for role in ("candidate", "reference"):
            side = row[role]
            assert side["output"] and side["answer"]["outcome"] in {"ok", "invalid"}
            assert side["usage"]["input_tokens"] > 0 and side["usage"]["output_tokens"] > 0
            assert side["cost_usd"] > 0
        assert {k for k, v in row["scores"].items() if v is not None} <= {"agree", "candidate_correct",
                                                                          "reference_correct"}
        assert row["scores"]["candidate_correct"] in (True, False)  # classification: no metric values
    html = (folder / "report.html").read_text()
    assert "SIMULATED" in html and summary["decision"]["verdict"] in html

    second = _run(project, "-n", "40", "--run-id", "second")
    assert second.exit_code == 0, second.output
    again = _summary(project / "reports" / "triage" / "second")
    assert again["execution"]["requests_sent"] == 0 and again["execution"]["cache_hits"] == 80
    assert again["cost_usd"]["this_run"] == 0
    assert len(_ledger(project)) == 80  # not one more request reached the API
    assert again["metrics"] == summary["metrics"] and again["decision"] == summary["decision"]
    rows_again = [json.loads(line) for line in
                  (project / "reports" / "triage" / "second" / "results.jsonl").read_text().splitlines()]
    assert [r["candidate"]["output"] for r in rows_again] == [r["candidate"]["output"] for r in rows]


def test_read_only_cache_refuses_to_spend(project: Path) -> None:
    configure(project, batch_delay_s=0.2, poll_initial_s=0.1, poll_max_s=0.5)
    assert _run(project, "-n", "10", "--run-id", "warm").exit_code == 0
    result = CliRunner().invoke(main, ["run", str(project / "tasks" / "triage.yaml"), "-q", "-n", "20",
                                       "--cache", "read-only"])
    assert result.exit_code == 9  # EXIT_CACHE
    assert "not in the response cache" in result.output
    assert len(_ledger(project)) == 20


def test_online_without_a_key_is_a_clear_error(project: Path) -> None:
    result = CliRunner().invoke(main, ["run", str(project / "tasks" / "triage.yaml"), "-q", "--online"])
    assert result.exit_code == 8  # EXIT_AUTH
    assert "ANTHROPIC_API_KEY is not set" in result.output


def test_unknown_model_gets_the_apis_404_as_an_actionable_error(project: Path) -> None:
    task = project / "tasks" / "triage.yaml"
    task.write_text(task.read_text().replace("candidate: claude-haiku-5-5", "candidate: claude-haiku-9-9"))
    with (project / "evalkit.toml").open("a") as handle:
        handle.write('\n[pricing.models."claude-haiku-9-9"]\ninput = 1\noutput = 1\ncache_write_5m = 1\n'
                     "cache_write_1h = 1\ncache_read = 1\n")
    result = CliRunner().invoke(main, ["run", str(task), "-q", "-n", "5"])
    assert result.exit_code == 4
    assert "does not know model 'claude-haiku-9-9'" in result.output


def test_model_without_a_price_never_runs_at_zero_dollars(project: Path) -> None:
    task = project / "tasks" / "triage.yaml"
    task.write_text(task.read_text().replace("reference: claude-sonnet-5-5", "reference: claude-opus-4-1"))
    result = CliRunner().invoke(main, ["run", str(task), "-q", "-n", "5"])
    assert result.exit_code == 2
    assert "no price for model 'claude-opus-4-1'" in result.output
    assert _ledger(project) == []


@pytest.mark.slow
def test_served_simulator_over_http_is_detected_as_simulated(project: Path, tmp_path: Path) -> None:
    configure(project, batch_delay_s=0.2, poll_initial_s=0.1, poll_max_s=0.5)  # no waiting on the batches
    state = tmp_path / "server-state"
    server, port = serve_simulator(project, state, tmp_path / "server.log")
    try:
        secret = "sk-ant-test-secret-0123456789"
        env = {**os.environ, "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}", "ANTHROPIC_API_KEY": secret}
        result = subprocess.run(
            [sys.executable, "-m", "evalkit", "run", "tasks/triage.yaml", "-q", "-n", "15",
             "--run-id", "http"],
            cwd=project, env=env, capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, result.stderr + result.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)
    summary = _summary(project / "reports" / "triage" / "http")
    assert summary["provenance"]["backend"]["kind"] == "api"
    assert summary["provenance"]["simulated"] is True  # identified by the simulator's response header
    assert len(Ledger.read(state / "billing.jsonl")) == 30
    for path in [*project.rglob("*"), *state.rglob("*")]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_report_is_rerendered_from_the_run_files_alone(project: Path) -> None:
    first = _run(project, "-n", "30", "--mode", "realtime", "--run-id", "rerender")
    assert first.exit_code == 0, first.output
    folder = project / "reports" / "triage" / "rerender"
    original = (folder / "report.html").read_text()
    (folder / "report.html").unlink()
    result = CliRunner().invoke(main, ["report", str(folder)])
    assert result.exit_code == 0, result.output
    assert (folder / "report.html").read_text() == original

    summary = _summary(folder)
    summary["schema_version"] = 1
    (folder / "summary.json").write_text(json.dumps(summary))
    result = CliRunner().invoke(main, ["report", str(folder)])
    assert result.exit_code == 2 and "schema version 1" in result.output and "Traceback" not in result.output
    summary["schema_version"] = 2
    summary["decision"]["verdikt"] = "GO"
    (folder / "summary.json").write_text(json.dumps(summary))
    result = CliRunner().invoke(main, ["report", str(folder)])
    assert result.exit_code == 2 and "decision.verdikt" in result.output


def test_a_bad_run_option_is_refused_before_anything_is_paid(project: Path) -> None:
    result = _run(project, "-n", "10", "--run-id", "../escape")
    assert result.exit_code == 2 and "--run-id" in result.output
    result = _run(project, "-n", "0")
    assert result.exit_code == 2 and "--sample-size" in result.output
    assert _ledger(project) == []
