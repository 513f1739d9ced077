"""The decision as a run produces it: per-label and per-segment decisions, reference noise,
group-sequential early stopping, and the sample-size planner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from tests.test_batches import billed, summary


def _run(project: Path, *args: str) -> None:
    result = CliRunner().invoke(main, ["run", str(project / "tasks" / "triage.yaml"), "-q", "--mode",
                                       "realtime", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.mark.e2e
def test_group_decisions_cover_every_label_and_segment(project: Path) -> None:
    _run(project, "-n", "100", "--run-id", "groups")
    report = summary(project, "groups")
    groups = report["group_decisions"]
    assert set(groups["label"]) == {"billing", "technical", "account", "feature_request", "general"}
    assert set(groups["channel"]) == {"email", "chat", "web_form", "phone_transcript"}
    assert sum(group["n"] for group in groups["label"].values()) == report["decision"]["n"]
    for group in (*groups["label"].values(), *groups["channel"].values()):
        # 100 samples over 5 labels: groups under decision.min_group_size (30) get no verdict at all
        if group["n"] < 30:
            assert group["verdict"] is None and "too few to test" in group["note"]
        else:
            assert group["verdict"] in {"GO", "NO-GO", "INCONCLUSIVE"}
            assert group["p_nogo_adjusted"] is not None
        assert group["exploratory_verdict"] in {"GO", "NO-GO", "INCONCLUSIVE"}
    assert "tango_t" in report["decision"]["details"] and "mcnemar" in report["decision"]["details"]


@pytest.mark.e2e
def test_reference_noise_is_measured_on_repeated_requests(project: Path) -> None:
    task = project / "tasks" / "triage.yaml"
    task.write_text(task.read_text().replace("  margin: 0.05\n", "  margin: 0.05\n  reference_noise: 40\n"))
    _run(project, "-n", "60", "--run-id", "noise")
    noise = summary(project, "noise")["reference_noise"]
    assert noise["n"] == 40
    assert 0.5 < noise["self_agreement"] < 1.0  # the simulated reference re-samples like a real model
    references = [e for e in billed(project) if e["model"] == "claude-sonnet-5-5"]
    assert len(references) == 100  # 60 samples + 40 repeats


@pytest.mark.e2e
def test_sequential_run_stops_early_on_a_clear_case(project: Path) -> None:
    # Candidate = reference: no loss at all, which the O'Brien–Fleming test can declare at the second look.
    task = project / "tasks" / "triage.yaml"
    task.write_text(task.read_text().replace("candidate: claude-haiku-5-5", "candidate: claude-sonnet-5-5"))
    _run(project, "--sequential", "--run-id", "seq")
    report = summary(project, "seq")
    sequential = report["sequential"]
    assert sequential["looks"] == [100, 200, 300]
    assert sequential["stopped_at"] == 200 and sequential["samples_saved"] == 100
    assert report["decision"]["verdict"] == "GO" and "group-sequential" in report["decision"]["rule"]
    assert report["decision_fixed_sample"]["n"] == sequential["stopped_at"]
    # identical requests are sent once; the rest never
    assert len(billed(project)) == sequential["stopped_at"]
    rows = (project / "reports" / "triage" / "seq" / "results.jsonl").read_text().splitlines()
    assert len(rows) == sequential["stopped_at"]
    assert sequential["cost_saved_usd"] > 0
    assert json.loads(rows[0])["id"]


def test_plan_command(project: Path) -> None:
    result = CliRunner().invoke(main, ["plan", str(project / "tasks" / "triage.yaml"),
                                       "--expected-gap", "0.01"])
    assert result.exit_code == 0 and "243 samples give a 80% chance of a GO" in result.output
    stuck = CliRunner().invoke(main, ["plan", str(project / "tasks" / "triage.yaml"),
                                      "--expected-gap", "0.05"])
    assert stuck.exit_code == 1
