"""The rest of the audit's findings: schemas the API would refuse, routing that cannot pay, calibration
that dropped answers, and sample-size advice beyond the data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.datasets import Sample
from evalkit.prompts.render import ModelRequest
from evalkit.providers.base import ModelResponse
from evalkit.providers.execute import CallResult
from evalkit.routing.analysis import analyse_routing
from evalkit.scoring.answers import Answer
from evalkit.scoring.samples import SampleResult, ScoredSample
from evalkit.sim.app import Ledger

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.e2e
def test_a_schema_keyword_the_api_rejects_fails_validate_with_its_line(project: Path) -> None:
    task = project / "tasks" / "invoice.yaml"
    (project / "datasets" / "invoices.jsonl").write_text((REPO / "datasets" / "invoices.jsonl").read_text())
    text = (REPO / "tasks" / "invoice_extraction.yaml").read_text()
    assert "anyOf" in text  # the shipped task uses the certainly-accepted form for nullable fields
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("total:"))
    lines[at] = "      total: {type: number, minimum: 0}"
    task.write_text("\n".join(lines) + "\n")
    for command in ("validate", "lint"):
        result = _cli(command, str(task))
        assert result.exit_code != 0, result.output
        assert f"{task}:{at + 1}" in result.output and "minimum" in result.output
        assert "output.json_schema.properties.total" in result.output
    result = _cli("run", str(task), "-q", "-n", "5", "--mode", "realtime")
    assert result.exit_code == 2 and "minimum" in result.output
    assert Ledger.read(project / ".evalkit" / "simulator" / "billing.jsonl") == []  # refused before paying


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "tasks").glob("*.yaml")))
def test_every_shipped_task_has_a_schema_structured_outputs_accept(name: str) -> None:
    result = _cli("lint", str(REPO / "tasks" / name))
    assert "output.json_schema" not in result.output and "structured outputs" not in result.output, (
        result.output
    )


def _result(index: int, *, confidence: float | None, escalate: bool, right: bool) -> SampleResult:
    sample = Sample(id=f"s{index}", text="t", label="a", fields={}, input_hash="h")
    candidate = Answer(outcome="ok", label="a" if right else "b", confidence=confidence, escalate=escalate)
    reference = Answer(outcome="ok", label="a")
    calls = {
        role: CallResult(
            request=ModelRequest(sample_id=sample.id, role=role, params={"model": f"m-{role}"}),
            response=ModelResponse(message={"usage": {}}),
            error=None,
            from_cache=True,
        )
        for role in ("candidate", "reference")
    }
    return SampleResult(
        sample=sample,
        calls=calls,
        answers={"candidate": candidate, "reference": reference},
        scored=ScoredSample(sample=sample, candidate=candidate, reference=reference),
    )


def test_calibration_uses_every_answer_with_a_confidence_and_counts_the_flagged() -> None:
    results = [
        _result(i, confidence=0.9 if i % 3 else 0.4, escalate=i % 4 == 0, right=i % 3 != 0)
        for i in range(120)
    ]
    results += [_result(200 + i, confidence=None, escalate=False, right=False) for i in range(10)]
    analysis = analyse_routing(results, (0.0001, 0.002))
    calibration = analysis.calibration
    assert calibration is not None
    assert calibration.n == 120  # the 30 escalate-flagged answers with a confidence are included
    assert calibration.n_escalate_flagged == 30
    assert calibration.n_missing_confidence == 10


def test_routing_that_escalates_everything_says_it_does_not_pay() -> None:
    # A candidate whose confidence carries no signal: only escalating everything certifies the target.
    results = [_result(i, confidence=0.9, escalate=False, right=i % 5 != 0) for i in range(400)]
    analysis = analyse_routing(results, (0.0001, 0.002))
    assert analysis.chosen is not None and analysis.chosen.escalation_rate == 1.0
    assert analysis.pays is False
    assert "no routing threshold pays on this task" in (analysis.advice or "")
    assert analysis.costs is not None and analysis.costs.break_even_escalation_rate == pytest.approx(0.95)


@pytest.mark.e2e
def test_the_demo_says_whether_routing_pays(project: Path) -> None:
    result = _cli(
        "run",
        str(project / "tasks" / "triage.yaml"),
        "-q",
        "-n",
        "300",
        "--mode",
        "realtime",
        "--run-id",
        "demo",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((project / "reports" / "triage" / "demo" / "summary.json").read_text())
    routing, projection = summary["routing"], summary["projection"]
    html = (project / "reports" / "triage" / "demo" / "report.html").read_text()
    if routing["pays"]:
        chosen = routing["chosen"]
        assert chosen["escalation_rate"] < routing["costs"]["break_even_escalation_rate"]
    else:
        assert "no routing threshold pays on this task" in result.output
        assert "no routing threshold pays on this task" in html
    if routing["chosen"]:
        assert projection["escalation_rate"] == routing["chosen"]["escalation_rate"]  # the shipped threshold
        assert projection["escalation_rate_held_out"] == routing["cross_fitted"]["escalation_rate"]
    assert "break-even" in html


def _write_task(project: Path, extra: str, rows: int = 68) -> Path:
    data = [json.loads(line) for line in (project / "datasets" / "triage.jsonl").read_text().splitlines()]
    test_rows = [row for row in data if row["split"] == "test"][:rows]
    (project / "datasets" / "small.jsonl").write_text("".join(json.dumps(row) + "\n" for row in test_rows))
    task = project / "tasks" / "triage.yaml"
    text = task.read_text().replace("path: ../datasets/triage.jsonl", "path: ../datasets/small.jsonl")
    task.write_text(text.replace("decision:\n  margin: 0.05\n", f"decision:\n  margin: 0.05\n{extra}"))
    return task


@pytest.mark.e2e
def test_plan_handles_a_relative_margin(project: Path) -> None:
    task = project / "tasks" / "triage.yaml"
    absolute = _cli("plan", str(task), "--expected-gap", "0.02")
    task.write_text(
        task.read_text().replace(
            "decision:\n  margin: 0.05\n", "decision:\n  margin: 0.05\n  margin_type: relative\n"
        )
    )
    relative = _cli("plan", str(task), "--expected-gap", "0.02", "--reference-accuracy", "0.8")
    assert absolute.exit_code == 0 and relative.exit_code == 0, relative.output
    n_absolute = int(absolute.output.split(" samples give")[0].split()[-1])
    n_relative = int(relative.output.split(" samples give")[0].split()[-1])
    assert n_relative > n_absolute  # a 4-point margin (5% of 80%) needs more samples than a 5-point one
    missing = _cli("plan", str(task), "--expected-gap", "0.02")
    assert missing.exit_code == 2 and "--reference-accuracy" in missing.output


@pytest.mark.e2e
def test_advice_never_asks_for_more_rows_than_the_dataset_has(project: Path) -> None:
    task = _write_task(project, "")
    planned = _cli("plan", str(task), "--expected-gap", "0.03")
    assert "the dataset has 68 rows" in planned.output or planned.exit_code == 1
    result = _cli("run", str(task), "-q", "--mode", "realtime", "--run-id", "small")
    assert result.exit_code == 0, result.output
    summary = json.loads((project / "reports" / "triage" / "small" / "summary.json").read_text())
    if summary["decision"]["verdict"] == "INCONCLUSIVE":
        reason = summary["decision"]["reason"]
        needed = summary["decision"]["details"]["n_to_decide"]
        if needed is None or needed > 68:
            assert "The dataset has 68 rows: this decision cannot be reached with it" in reason
            assert "more samples" not in reason
