"""The PDF-invoice task and a conversation task end to end offline: the real SDK sends the document blocks
and the conversation to evalkit's simulator (in process), which reads the PDFs and bills their pages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evalkit import media
from evalkit.cli import main
from evalkit.sim.app import Ledger

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def workspace(demo_project: Path) -> Path:
    """The shipped project plus the conversation example."""
    root = demo_project
    for name in ("support_chat.yaml", "support_chats.jsonl"):
        shutil.copy(REPO / "tests" / "fixtures" / "inputs" / name, root / "tasks" / name)
    return root


def _run(root: Path, task: str, run_id: str, *args: str) -> tuple[dict[str, Any], str]:
    result = CliRunner().invoke(main, ["run", str(root / "tasks" / task), "--mode", "realtime", "--run-id",
                                       run_id, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    folder = next((root / "reports").glob(f"*/{run_id}"))
    return json.loads((folder / "summary.json").read_text()), result.output


def test_the_pdf_invoice_task_runs_offline_and_reads_the_pdfs(workspace: Path) -> None:
    summary, output = _run(workspace, "invoice_pdf.yaml", "pdf", "-n", "40")
    assert "SIMULATED" in output and summary["provenance"]["simulated"]
    assert summary["decision"]["verdict"] in ("GO", "NO-GO", "INCONCLUSIVE")
    f1 = summary["metrics"]["field_f1"]
    # the simulated models read the invoice out of the PDF: as well as they read the same invoice as text
    text_summary, _ = _run(workspace, "invoice_extraction.yaml", "text", "-n", "40")
    assert f1 == text_summary["metrics"]["field_f1"]
    assert 0.3 < f1["candidate_vs_gold"] < f1["reference_vs_gold"] <= 1.0
    billed = Ledger.read(workspace / ".evalkit" / "simulator" / "billing.jsonl")
    pdf_calls = [row for row in billed if sum(row["usage"].get(key) or 0 for key in (
        "input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")) > media.HIGH_RES_TIER[1]]
    assert len(pdf_calls) >= 80  # every PDF request paid for its page image on top of the text
    again, _ = _run(workspace, "invoice_pdf.yaml", "pdf-again", "-n", "40")
    # answered from the response cache: same bytes, same keys
    assert again["execution"]["requests_sent"] == 0 and again["execution"]["cache_hits"] == 80


def test_a_conversation_task_runs_offline(workspace: Path) -> None:
    summary, output = _run(workspace, "support_chat.yaml", "chat")
    assert "SIMULATED" in output
    accuracy = summary["metrics"]["accuracy"]
    assert accuracy["reference"]["value"] > 0.6  # routed by the customer's last turn, not the greeting


def test_a_static_document_is_cached_and_per_sample_pdfs_are_not(workspace: Path) -> None:
    task = (workspace / "tasks" / "invoice_pdf.yaml").read_text()
    task = task.replace("name: invoice_pdf", "name: invoice_pdf_reference").replace(
        "  documents: [document]", "  documents: [document]\n"
        "  static_documents: [../datasets/invoices_pdf/inv0001.pdf]   # e.g. a worked example")
    (workspace / "tasks" / "invoice_pdf_reference.yaml").write_text(task)
    summary, _ = _run(workspace, "invoice_pdf_reference.yaml", "ref", "-n", "20", "--concurrency", "1")
    for role in ("candidate", "reference"):
        caching = summary["caching"][role]
        assert caching["plan"]["enabled"] and caching["plan"]["prefix_tokens"] > media.HIGH_RES_TIER[1]
        assert caching["hit_rate"] > 0.9  # every request after the first reads system + static PDF
    # the simulated models still answer from each sample's own invoice, not the shared one
    plain, _ = _run(workspace, "invoice_pdf.yaml", "plain", "-n", "20")
    assert summary["metrics"]["field_f1"] == plain["metrics"]["field_f1"]


def test_validate_says_what_the_sample_sends(workspace: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(workspace / "tasks" / "invoice_pdf.yaml")])
    assert result.exit_code == 0, result.output
    assert "the sample sends 200 PDFs (200 pages), 0 images" in result.output
    chat = CliRunner().invoke(main, ["validate", str(workspace / "tasks" / "support_chat.yaml")])
    assert "conversations of up to 3 turns" in chat.output
