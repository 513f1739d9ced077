"""Routing: the analysis in a run, `evalkit tune` from cache only, and the runtime router."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import anthropic
import httpx2
import numpy as np
import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.config import load_settings
from evalkit.errors import ConfigError
from evalkit.routing.router import Router, RoutingFile
from evalkit.sim.app import SimulatorState, create_app
from evalkit.spec import load_task
from tests.test_batches import billed, summary


def _run(project: Path, *args: str) -> None:
    result = CliRunner().invoke(main, ["run", str(project / "tasks" / "triage.yaml"), "-q", "--mode",
                                       "realtime", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.mark.e2e
def test_run_reports_the_routing_curve_and_an_honest_threshold(project: Path) -> None:
    _run(project, "-n", "200", "--run-id", "r")
    routing = summary(project, "r")["routing"]
    assert routing["available"] and routing["n"] == 200
    sweep = routing["sweep"]
    assert [row["t"] for row in sweep][:3] == [0.0, 0.01, 0.02] and sweep[-1]["t"] == 1.01
    assert sweep[-1]["escalation_rate"] == 1.0 and sweep[-1]["quality_loss"] == 0.0
    escalation = [row["escalation_rate"] for row in sweep]
    assert escalation == sorted(escalation)  # monotone in t
    assert routing["seed_default"]["t"] == 0.75
    costs = routing["costs"]
    assert costs["candidate_per_request"] < costs["reference_per_request"]
    # 200 samples cannot certify a 1-point loss even when escalating everything (0.99**200 > 0.10):
    # evalkit says so instead of shipping an uncertified threshold.
    assert routing["chosen"] is None and "no threshold can be certified" in routing["guarantee"]
    assert routing["calibration"]["auroc"] > 0.6  # the simulated confidence carries signal
    for row in routing["pareto"]:
        assert not any(o["cost_per_1k"] <= row["cost_per_1k"]
                       and o["routed_accuracy"] > row["routed_accuracy"] for o in sweep)


@pytest.mark.e2e
def test_tune_sends_no_request_and_writes_routing_json(project: Path) -> None:
    _run(project, "-n", "200", "--run-id", "r")
    before = len(billed(project))
    result = CliRunner().invoke(main, ["tune", str(project / "tasks" / "triage.yaml"), "-n", "200",
                                       "--mode", "realtime", "--target-loss", "0.05"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "0 API requests" in result.output and "← chosen" in result.output
    assert len(billed(project)) == before
    routing = json.loads((project / "reports" / "triage" / "routing.json").read_text())
    assert routing["threshold"] is not None and routing["candidate"] == "claude-haiku-5-5"
    assert routing["expected"]["escalation_rate"] <= 1 and routing["evidence"]["run_from_cache"] is True
    assert "with probability ≥ 90%" in routing["guarantee"]


@pytest.mark.e2e
def test_tune_refuses_without_cached_answers(project: Path) -> None:
    result = CliRunner().invoke(main, ["tune", str(project / "tasks" / "triage.yaml"), "-n", "30"])
    assert result.exit_code == 9 and "not in the response cache" in result.output  # EXIT_CACHE
    assert billed(project) == []


@pytest.mark.e2e
def test_budget_and_escalation_objectives(project: Path) -> None:
    _run(project, "-n", "200", "--run-id", "r")
    for extra in (["--budget", "0.5"], ["--escalation-rate", "0.3"]):
        result = CliRunner().invoke(main, ["tune", str(project / "tasks" / "triage.yaml"), "-n", "200",
                                           "--mode", "realtime", *extra], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    routing = json.loads((project / "reports" / "triage" / "routing.json").read_text())
    assert routing["in_sample"]["escalation_rate"] >= 0.3


@pytest.mark.e2e
def test_router_escalates_exactly_the_requests_below_the_threshold(project: Path, tmp_path: Path) -> None:
    settings = load_settings(project)
    state = SimulatorState(settings.simulator, root=settings.root, state_dir=tmp_path / "sim")
    client = anthropic.AsyncAnthropic(
        api_key="k", base_url="http://sim.test",
        http_client=anthropic.DefaultAsyncHttpxClient(transport=httpx2.ASGITransport(app=create_app(state))))
    task = load_task(project / "tasks" / "triage.yaml")
    router = Router(task, threshold=0.8, honour_escalate_flag=False, client=client)
    texts = [json.loads(line)
             for line in (project / "datasets" / "triage.jsonl").read_text().splitlines()][:40]

    async def route_all() -> list:
        return [await router.aroute(row["text"], channel=row["channel"]) for row in texts]

    routed = asyncio.run(route_all())
    confidences = np.array([r.candidate.confidence if r.candidate.ok else -1 for r in routed])
    escalated = np.array([r.escalated for r in routed])
    assert escalated.any() and not escalated.all()
    assert (escalated == (confidences < 0.8)).all()
    for r in routed:
        assert r.model == ("claude-sonnet-5-5" if r.escalated else "claude-haiku-5-5")
        assert (r.reference is not None) == r.escalated
    references = [e for e in json.loads("[" + ",".join((tmp_path / "sim" / "billing.jsonl").read_text()
                                                         .splitlines()) + "]")
                  if e["model"] == "claude-sonnet-5-5"]
    assert len(references) == int(escalated.sum())  # the reference is called only when escalating


def test_router_refuses_a_routing_file_for_other_models(project: Path) -> None:
    task = load_task(project / "tasks" / "triage.yaml")
    with pytest.raises(ConfigError, match="tuned for"):
        Router.from_routing(RoutingFile.model_construct(threshold=0.8, candidate="claude-haiku-4-5",
                                                        reference="claude-sonnet-5-5",
                                                        honour_escalate_flag=True),
                            task)
