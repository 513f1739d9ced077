"""No false GO: each broken-evidence run from the audit becomes INVALID-RUN with the reason and the fix.

Every case here was a confident GO (or a silently moved verdict) before the validity gate existed.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.sim.app import Ledger

pytestmark = pytest.mark.e2e

INVALID_RUN_EXIT = 7
INSURANCE_LABELS = [
    "claim_status",
    "policy_change",
    "premium_question",
    "cancellation",
    "coverage_question",
    "document_request",
    "complaint",
    "payment_issue",
    "fraud_report",
    "other",
]


def _cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _summary(project: Path, task: str, run_id: str) -> dict[str, Any]:
    return json.loads((project / "reports" / task / run_id / "summary.json").read_text())


def _billed(project: Path) -> list[dict[str, Any]]:
    return Ledger.read(project / ".evalkit" / "simulator" / "billing.jsonl")


def _insurance_task(project: Path, rows: int = 68) -> Path:
    """A 10-label domain nobody here wrote a simulator corpus for."""
    rng = random.Random(5)
    lines = []
    for index in range(rows):
        label = INSURANCE_LABELS[index % len(INSURANCE_LABELS)]
        words = label.replace("_", " ")
        lines.append(
            json.dumps(
                {
                    "id": f"t{index:03d}",
                    "split": "test",
                    "label": label,
                    "text": f"Hello, about my {words}: policy {rng.randint(1000, 9999)} needs help.",
                }
            )
        )
    (project / "datasets" / "insurance.jsonl").write_text("\n".join(lines) + "\n")
    labels = "\n".join(
        f"    {label}: questions about {label.replace('_', ' ')}" for label in INSURANCE_LABELS
    )
    task = project / "tasks" / "insurance.yaml"
    task.write_text(f"""name: insurance
dataset: {{path: ../datasets/insurance.jsonl, label_column: label}}
sample: {{size: {rows}}}
prompt:
  system: |
    Route the insurance customer's ticket to one queue: {{{{ labels | join(', ') }}}}.
    Answer with JSON only.
  user: "{{{{ text }}}}"
output:
  label_field: label
  labels:
{labels}
models: {{candidate: claude-haiku-5-5, reference: claude-sonnet-5-5, max_tokens: 1000, thinking: disabled}}
""")
    return task


def _set_models(task_file: Path, block: str) -> None:
    """Replace the task's whole ``models:`` section."""
    text = task_file.read_text()
    start = text.index("\nmodels:") + 1
    end = text.index("\n\n", start) + 2
    task_file.write_text(text[:start] + "models:\n" + block + "\n" + text[end:])


def _problems(summary: dict[str, Any]) -> set[str]:
    return {problem["check"] for problem in summary["validity"]["problems"]}


def test_a_domain_without_a_simulator_corpus_is_an_invalid_run(project: Path) -> None:
    task = _insurance_task(project)
    checked = _cli("validate", str(task))
    assert checked.exit_code == INVALID_RUN_EXIT, checked.output
    assert "no corpus for this task's labels" in checked.output and "[[simulator.corpora]]" in checked.output
    assert _billed(project) == []  # validate pays nothing

    result = _cli("run", str(task), "-q", "--mode", "realtime", "--run-id", "ins")
    assert result.exit_code == INVALID_RUN_EXIT, result.output
    assert "INVALID-RUN" in result.output and "GO —" not in result.output
    summary = _summary(project, "insurance", "ins")
    assert summary["decision"]["verdict"] == "INVALID-RUN"
    assert "simulator_no_corpus" in _problems(summary)
    assert (
        'class="verdict v-INVALID-RUN"'
        in (project / "reports" / "insurance" / "ins" / "report.html").read_text()
    )


def test_a_reference_log_in_the_wrong_shape_is_an_invalid_run(project: Path) -> None:
    task_file = project / "tasks" / "triage.yaml"
    rows = [json.loads(line) for line in (project / "datasets" / "triage.jsonl").read_text().splitlines()]
    log = project / "datasets" / "reference_log.jsonl"
    # Another tool's field name (label) where the task answers in 'category', and no mapping given: every
    # reference answer is invalid.
    log.write_text("".join(json.dumps({"id": r["id"], "output": json.dumps({"label": r["category"]})}) + "\n"
                           for r in rows))
    task_file.write_text(
        task_file.read_text().replace(
            "  reference: claude-sonnet-5-5\n",
            "  reference: claude-sonnet-5-5\n  reference_log: ../datasets/reference_log.jsonl\n",
        )
    )
    result = _cli("run", str(task_file), "-q", "-n", "68", "--mode", "realtime", "--run-id", "log")
    assert result.exit_code == INVALID_RUN_EXIT, result.output
    summary = _summary(project, "triage", "log")
    assert summary["decision"]["verdict"] == "INVALID-RUN" and "reference_invalid" in _problems(summary)
    problem = next(p for p in summary["validity"]["problems"] if p["check"] == "reference_invalid")
    assert "68 of 68 reference answers" in problem["message"]


def test_answers_cut_off_on_both_sides_are_an_invalid_run(project: Path) -> None:
    task_file = project / "tasks" / "triage.yaml"
    _set_models(
        task_file,
        "  candidate: claude-haiku-5-5\n  reference: claude-sonnet-5-5\n  max_tokens: 12\n"
        "  thinking: disabled\n",
    )
    result = _cli("run", str(task_file), "-q", "-n", "40", "--mode", "realtime", "--run-id", "cut")
    assert result.exit_code == INVALID_RUN_EXIT, result.output
    summary = _summary(project, "triage", "cut")
    assert {"truncated", "reference_invalid"} <= _problems(summary)
    roles = {p["role"] for p in summary["validity"]["problems"] if p["check"] == "truncated"}
    assert roles == {"candidate", "reference"}


def test_a_simulator_trained_on_the_evaluated_rows_is_an_invalid_run(project: Path) -> None:
    settings = project / "evalkit.toml"
    # Point the triage corpus at the split being evaluated.
    settings.write_text(
        settings.read_text().replace(
            'path = "datasets/triage.jsonl"\ntext_column = "text"\nlabel_column = "category"\nwhere = '
            '{ split = "train" }',
            'path = "datasets/triage.jsonl"\ntext_column = "text"\nlabel_column = "category"\nwhere = '
            '{ split = "test" }',
        )
    )
    task_file = str(project / "tasks" / "triage.yaml")
    checked = _cli("validate", task_file, "-n", "60")
    assert checked.exit_code == INVALID_RUN_EXIT and "also the simulator's training rows" in checked.output
    result = _cli("run", task_file, "-q", "-n", "60", "--mode", "realtime", "--run-id", "leak")
    assert result.exit_code == INVALID_RUN_EXIT
    assert "simulator_leak" in _problems(_summary(project, "triage", "leak"))


def test_thinking_that_eats_max_tokens_is_an_invalid_run_with_the_fix(project: Path) -> None:
    task_file = project / "tasks" / "triage.yaml"
    # The audit's setting: the 5.5 models think by default (Sonnet at high effort) inside a 400-token budget.
    _set_models(
        task_file, "  candidate: claude-haiku-5-5\n  reference: claude-sonnet-5-5\n  max_tokens: 400\n"
    )
    estimate = _cli("estimate", str(task_file), "-n", "60", "--mode", "realtime")
    assert estimate.exit_code == 0 and "max_tokens" in estimate.output and "thinking" in estimate.output
    result = _cli("run", str(task_file), "-q", "-n", "60", "--mode", "realtime", "--run-id", "think")
    assert result.exit_code == INVALID_RUN_EXIT, result.output
    summary = _summary(project, "triage", "think")
    truncated = [p for p in summary["validity"]["problems"] if p["check"] == "truncated"]
    assert any(p["role"] == "reference" for p in truncated)
    fix = " ".join(p["fix"] for p in truncated)
    assert re.search(r"raise models\.\w+\.max_tokens to ~\d+", fix) or "effort: low" in fix
    assert "after a thinking block" in fix or "effort: low" in fix


def test_the_shipped_tasks_are_valid_and_decide(project: Path) -> None:
    result = _cli(
        "run",
        str(project / "tasks" / "triage.yaml"),
        "-q",
        "-n",
        "120",
        "--mode",
        "realtime",
        "--run-id",
        "ok",
    )
    assert result.exit_code == 0, result.output
    summary = _summary(project, "triage", "ok")
    assert summary["validity"]["valid"] is True and summary["validity"]["problems"] == []
    assert summary["decision"]["verdict"] in {"GO", "NO-GO", "INCONCLUSIVE"}
    truncation = {t["role"]: t for t in summary["validity"]["truncation"]}
    assert truncation["reference"]["truncated"] == 0 and truncation["candidate"]["truncated"] == 0


def test_effort_high_with_a_small_max_tokens_truncates_in_the_simulator_and_is_an_invalid_run(
        project: Path) -> None:
    """Thinking tokens scale with effort and count toward max_tokens (facts §8): at effort high, a 900-token
    budget leaves most answers inside or right after the thought. The gate must say so, not decide."""
    task_file = project / "tasks" / "triage.yaml"
    _set_models(task_file, "  candidate: claude-haiku-5-5\n  reference: claude-sonnet-5-5\n  effort: high\n"
                "  max_tokens: 900\n")
    result = _cli("run", str(task_file), "-q", "-n", "40", "--mode", "realtime", "--run-id", "high")
    assert result.exit_code == INVALID_RUN_EXIT, result.output
    summary = _summary(project, "triage", "high")
    assert summary["decision"]["verdict"] == "INVALID-RUN"
    truncated = {p["role"] for p in summary["validity"]["problems"] if p["check"] == "truncated"}
    assert truncated == {"candidate", "reference"}
    rows = [json.loads(line) for line in
            (project / "reports" / "triage" / "high" / "results.jsonl").read_text().splitlines()]
    cut = [row["candidate"] for row in rows if row["candidate"]["stop_reason"] == "max_tokens"]
    assert len(cut) >= 12  # the thought (typically ~1,200 tokens at high) ate the budget of many answers
    assert all(answer["usage"]["output_tokens"] == 900 for answer in cut)
