"""The shipped example tasks run end to end offline, and the reference can come from production logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.sim.app import Ledger

pytestmark = pytest.mark.e2e


def _run(root: Path, task: str, *args: str) -> dict:
    result = CliRunner().invoke(main, ["run", str(root / "tasks" / task), "-q", "--mode", "realtime", *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    folder = next((root / "reports").glob(f"*/{args[args.index('--run-id') + 1]}"))
    return json.loads((folder / "summary.json").read_text())


def _billed(root: Path) -> list[dict]:
    return Ledger.read(root / ".evalkit" / "simulator" / "billing.jsonl")


def test_invoice_extraction_scores_field_by_field(demo_project: Path) -> None:
    summary = _run(demo_project, "invoice_extraction.yaml", "-n", "40", "--run-id", "inv")
    metrics = summary["metrics"]
    assert summary["provenance"]["simulated"] and summary["scoring_mode"] == "gold"
    f1 = metrics["field_f1"]
    assert 0.3 < f1["candidate_vs_gold"] < f1["reference_vs_gold"] <= 1.0  # the small tier reads less
    assert set(metrics["per_field_accuracy"]["candidate"]) >= {"vendor", "invoice_number", "total",
                                                               "line_items"}
    assert metrics["per_field_accuracy"]["reference"]["invoice_date"] > 0.7
    assert "layout" in summary["group_decisions"]


def test_contract_clauses_caches_its_long_playbook(demo_project: Path) -> None:
    summary = _run(demo_project, "contract_clauses.yaml", "-n", "30", "--run-id", "cc")
    for role in ("candidate", "reference"):
        caching = summary["caching"][role]
        assert caching["plan"]["enabled"] and caching["plan"]["prefix_tokens"] > 3000
        assert caching["hit_rate"] > 0.95
    # caching more than halves it
    assert summary["cost_usd"]["cache_savings"] > summary["cost_usd"]["answers"]


def test_reference_from_logs_makes_no_reference_requests_and_decides_the_same(demo_project: Path) -> None:
    called = _run(demo_project, "triage.yaml", "-n", "60", "--run-id", "called")
    results = next((demo_project / "reports").glob("*/called")) / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    log = demo_project / "datasets" / "sonnet_production_log.jsonl"
    log.write_text("".join(json.dumps({"id": row["id"], "output": row["reference"]["output"]}) + "\n"
                           for row in rows))
    task = demo_project / "tasks" / "triage.yaml"
    task.write_text(task.read_text().replace("  max_tokens: 1024\n", "  max_tokens: 1024\n"
                                             "  reference_log: ../datasets/sonnet_production_log.jsonl\n"))
    before = len(_billed(demo_project))
    logged = _run(demo_project, "triage.yaml", "-n", "60", "--run-id", "logged")
    after = _billed(demo_project)
    assert not [e for e in after[before:] if e["model"] == "claude-sonnet-5-5"]  # no reference request
    assert logged["decision"] == called["decision"]
    assert logged["metrics"]["agreement"] == called["metrics"]["agreement"]
    assert logged["provenance"]["models"]["reference_source"].startswith("recorded: ")
    assert logged["models_usage"]["reference"]["cost_this_run_usd"]["total"] == 0


def test_reference_log_missing_ids_is_a_clear_error(demo_project: Path) -> None:
    (demo_project / "datasets" / "log.jsonl").write_text(json.dumps({"id": "t0001", "output": "{}"}) + "\n")
    task = demo_project / "tasks" / "triage.yaml"
    task.write_text(task.read_text().replace("  max_tokens: 1024\n", "  max_tokens: 1024\n"
                                             "  reference_log: ../datasets/log.jsonl\n"))
    result = CliRunner().invoke(main, ["run", str(task), "-q", "-n", "10"])
    assert result.exit_code == 2 and "no recorded reference response" in result.output


def test_summaries_are_scored_by_overlap_and_by_the_reference_as_judge(demo_project: Path) -> None:
    before = len(_billed(demo_project))
    summary = _run(demo_project, "summarize.yaml", "-n", "30", "--run-id", "sum")
    metrics = summary["metrics"]
    for name in ("token_f1", "rouge_l"):
        assert 0 < metrics[name]["candidate_vs_gold"] < metrics[name]["reference_vs_gold"] < 1
    assert metrics["judge"]["judged"] == 30 and 0 <= metrics["judge"]["equivalent"] <= 1
    judges = [e for e in _billed(demo_project)[before:] if e["model"] == "claude-sonnet-5-5"]
    assert len(judges) == 60  # 30 reference answers + 30 judgements, by the reference model
    rows = [json.loads(line) for line in
            next((demo_project / "reports").glob("*/sum")).joinpath("results.jsonl").read_text().splitlines()]
    assert all(row["scores"]["judge"] in (True, False) for row in rows)
