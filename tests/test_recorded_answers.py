"""Recorded answers for either side, in the forms users have them: scored like called ones, paid by nobody,
and never reported as simulated."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.sim.app import Ledger

pytestmark = pytest.mark.e2e

N = 60


def _rows(project: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (project / "datasets" / "triage.jsonl").read_text().splitlines()]
    return [row for row in rows if row["split"] == "test"]


def _wrong(label: str) -> str:
    return "general" if label != "general" else "billing"


def _answers(project: Path) -> dict[str, str]:
    """What the 'other tool' answered: right on every third sample only, so its accuracy is known."""
    return {row["id"]: row["category"] if index % 3 == 0 else _wrong(row["category"])
            for index, row in enumerate(_rows(project))}


def _run(project: Path, models: str, run_id: str) -> dict[str, Any]:
    task = project / "tasks" / "triage.yaml"
    text = task.read_text()
    start = text.index("\nmodels:") + 1
    end = text.index("\n\n", start) + 2
    task.write_text(text[:start] + models + "\n" + text[end:])
    result = CliRunner().invoke(main, ["run", str(task), "-q", "-n", str(N), "--mode", "realtime",
                                       "--run-id", run_id], catch_exceptions=False)
    assert result.exit_code in (0, 7), result.output
    return json.loads((project / "reports" / "triage" / run_id / "summary.json").read_text())


def _expected_accuracy(project: Path, summary: dict[str, Any]) -> float:
    answers = _answers(project)
    rows = [json.loads(line) for line in
            (project / "reports" / "triage" / summary["provenance"]["run_id"] / "results.jsonl").read_text()
            .splitlines()]
    return sum(answers[row["id"]] == row["gold"] for row in rows) / len(rows)


@pytest.mark.parametrize("form", ["text", "json", "fields-csv", "message"])
def test_a_candidate_log_in_each_answer_form_is_scored_exactly(project: Path, form: str) -> None:
    answers = _answers(project)
    log = project / "datasets" / "candidate_answers.jsonl"
    spec = "../datasets/candidate_answers.jsonl"
    if form == "text":
        log.write_text("".join(json.dumps({"id": i, "output": a}) + "\n" for i, a in answers.items()))
    elif form == "json":
        log.write_text("".join(json.dumps({"id": i, "output": json.dumps({"category": a, "confidence": 0.7})})
                               + "\n" for i, a in answers.items()))
    elif form == "fields-csv":
        log = project / "datasets" / "exported.csv"
        with log.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["ticket", "predicted", "score"])
            writer.writerows([i, a, "0.8"] for i, a in answers.items())
        spec = ("{path: ../datasets/exported.csv, format: fields, id_field: ticket, "
                "fields: {category: predicted, confidence: score}}")
    else:
        log.write_text("".join(json.dumps({"id": i, "message": {
            "type": "message", "role": "assistant", "model": "claude-haiku-5-5", "stop_reason": "end_turn",
            "content": [{"type": "text", "text": json.dumps({"category": a})}],
            "usage": {"input_tokens": 100, "output_tokens": 10}}}) + "\n" for i, a in answers.items()))
    summary = _run(project, "models:\n  candidate: claude-haiku-5-5\n  reference: claude-sonnet-5-5\n"
                            f"  effort: low\n  max_tokens: 1024\n  candidate_log: {spec}\n", form)
    assert summary["outcomes"]["candidate"] == {"ok": N, "invalid": 0, "error": 0}
    accuracy = summary["metrics"]["accuracy"]["candidate"]["value"]
    assert accuracy == pytest.approx(_expected_accuracy(project, summary))
    assert summary["provenance"]["models"]["candidate_source"].startswith("recorded: ")
    assert summary["models_usage"]["candidate"]["cost_this_run_usd"]["total"] == 0
    billed = Ledger.read(project / ".evalkit" / "simulator" / "billing.jsonl")
    assert {entry["model"] for entry in billed} == {"claude-sonnet-5-5"}  # the candidate was never called


def test_two_logs_call_nothing_need_no_price_and_are_not_simulated(project: Path) -> None:
    answers = _answers(project)
    (project / "datasets" / "cand.jsonl").write_text(
        "".join(json.dumps({"id": i, "output": a}) + "\n" for i, a in answers.items()))
    (project / "datasets" / "ref.jsonl").write_text(
        "".join(json.dumps({"id": r["id"], "output": r["category"]}) + "\n" for r in _rows(project)))
    # Models with no price in the table: nothing is called, so nothing needs one.
    summary = _run(project, "models:\n  candidate: acme-small-1\n  reference: acme-large-2\n"
                            "  candidate_log: ../datasets/cand.jsonl\n  reference_log: "
                            "../datasets/ref.jsonl\n",
                   "logs")
    assert Ledger.read(project / ".evalkit" / "simulator" / "billing.jsonl") == []
    assert summary["provenance"]["simulated"] is False
    assert summary["metrics"]["accuracy"]["reference"]["value"] == 1.0
    html = (project / "reports" / "triage" / "logs" / "report.html").read_text()
    assert "SIMULATED" not in html and "recorded: " in html


def test_the_documented_log_examples_are_valid_task_settings() -> None:
    """docs/recorded-answers.md must not teach a `models:` block the task parser would refuse."""
    import re

    import yaml

    from evalkit.spec import ModelsSpec

    doc = (Path(__file__).resolve().parents[1] / "docs" / "recorded-answers.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.S)
    assert len(blocks) >= 2
    for block in blocks:
        models = ModelsSpec.model_validate(yaml.safe_load(block)["models"])
        assert models.candidate_log is not None or models.reference_log is not None
