"""The CI gate's exit codes, JUnit/Markdown outputs, regression detection and the budget guard."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from tests.test_batches import billed


def _cli(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), env=env)


def _task(project: Path) -> str:
    return str(project / "tasks" / "triage.yaml")


def _same_models(project: Path) -> None:
    """Candidate = reference: identical answers, so the decision is a clear GO at enough samples."""
    task = project / "tasks" / "triage.yaml"
    task.write_text(task.read_text().replace("candidate: claude-haiku-5-5", "candidate: claude-sonnet-5-5"))


def _baseline(project: Path, *run_args: str) -> Path:
    assert _cli("run", _task(project), "-q", "--mode", "realtime", *run_args).exit_code == 0
    out = project / "baselines" / "triage.json"
    result = _cli("baseline", "save", _task(project), "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.e2e
def test_exit_0_on_pass_with_junit_and_markdown(project: Path, tmp_path: Path) -> None:
    _same_models(project)
    baseline = _baseline(project, "-n", "200")
    step_summary = tmp_path / "step_summary.md"
    junit = tmp_path / "junit.xml"
    result = _cli("gate", _task(project), "--baseline", str(baseline), "--mode", "realtime", "-n", "200",
                  "-q", "--junit", str(junit), env={"GITHUB_STEP_SUMMARY": str(step_summary)})
    assert result.exit_code == 0, result.output
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0"
    assert {case.get("name") for case in suite.iter("testcase")} == {"decision", "quality", "routing", "cost"}
    text = step_summary.read_text()
    assert "evalkit gate: triage — PASS" in text and "SIMULATED" in text


@pytest.mark.e2e
def test_exit_1_on_no_go(project: Path) -> None:
    baseline = _baseline(project, "-n", "300")
    result = _cli("gate", _task(project), "--baseline", str(baseline), "--mode", "realtime", "-n", "300",
                  "-q")
    assert result.exit_code == 1 and "gate decision: fail" in result.output


def test_exit_2_on_usage_errors(project: Path) -> None:
    result = _cli("gate", _task(project), "--baseline", str(project / "missing.json"), "-q")
    assert result.exit_code == 2 and "does not exist" in result.output
    not_json = project / "bad.json"
    not_json.write_text("{")
    result = _cli("gate", _task(project), "--baseline", str(not_json), "-q", "--mode", "realtime", "-n", "5")
    assert result.exit_code == 2 and "not valid JSON" in result.output


@pytest.mark.e2e
def test_exit_3_on_inconclusive_and_its_mapping(project: Path) -> None:
    _same_models(project)
    baseline = _baseline(project, "-n", "30")  # loss 0 but 30 samples cannot show it is under 5 points
    args = ["gate", _task(project), "--baseline", str(baseline), "--mode", "realtime", "-n", "30", "-q"]
    assert _cli(*args).exit_code == 3
    assert _cli(*args, "--inconclusive", "pass").exit_code == 0
    assert _cli(*args, "--inconclusive", "fail").exit_code == 1


@pytest.mark.e2e
def test_gate_flags_a_deliberately_degraded_prompt(project: Path) -> None:
    baseline = _baseline(project, "-n", "200")
    task = project / "tasks" / "triage.yaml"
    text = task.read_text()
    # A careless edit: the new, shorter instructions forget the billing queue (it stays a valid label).
    start, end = text.index("  system: |"), text.index("  user: |")
    task.write_text(text[:start] + "  system: |\n    Route the message to one queue: technical, account, "
                    "feature_request or general.\n    Answer with JSON only.\n" + text[end:])
    result = _cli("gate", _task(project), "--baseline", str(baseline), "--mode", "realtime", "-n", "200",
                  "-q", "--inconclusive", "pass")
    assert result.exit_code == 1, result.output
    assert "gate quality: fail" in result.output and "regression" in result.output
    gate = json.loads(next((project / "reports" / "triage").glob("*/gate.json")).read_text())
    quality = next(check for check in gate["checks"] if check["name"] == "quality")
    assert quality["details"]["worse"] > quality["details"]["better"]


@pytest.mark.e2e
def test_max_cost_below_the_estimate_sends_no_request(project: Path) -> None:
    estimate = _cli("estimate", _task(project), "-n", "50")
    assert estimate.exit_code == 0 and "estimated cost: $" in estimate.output
    result = _cli("run", _task(project), "-q", "-n", "50", "--max-cost", "0.001")
    assert result.exit_code == 6
    assert "refusing to start" in result.output and "no request was sent" in result.output
    assert billed(project) == []


@pytest.mark.e2e
def test_running_spend_stops_a_realtime_run_cleanly(project: Path) -> None:
    from evalkit.backends import connect
    from evalkit.config import load_settings
    from evalkit.cost.estimate import SpendTracker
    from evalkit.providers.execute import execute_realtime
    from evalkit.providers.response_cache import ResponseCache
    from tests.conftest import prepared_task as prepare

    settings = load_settings(project)
    prepared = prepare(_task(project), sample_size=30, settings=settings, mode="realtime")
    backend = connect(settings, offline=True)
    tracker = SpendTracker(settings.pricing, limit=0.005)
    with ResponseCache(settings.cache_dir) as cache:
        calls, stats = asyncio.run(execute_realtime(prepared.requests, backend.provider, cache, concurrency=1,
                                                    on_response=tracker.add))
        assert tracker.exceeded and stats.requests_sent < len(prepared.requests)
        assert sum(1 for c in calls if c.error and "budget" in c.error.message) == len(prepared.requests) - \
            stats.requests_sent
        assert len(cache) == stats.requests_sent  # every paid answer kept: a re-run resumes
    assert len(billed(project)) == stats.requests_sent
