"""The shipped multi-configuration demo on the simulator: four candidate configurations (a prompt variant
and an effort variant among them) against one reference asked once per sample, in one batch run; the
cheapest configuration GO after the family-wise correction is recommended, and the report shows the
cost–quality picture, the prompt-variant analysis, the verbosity advice and caching under traffic."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.sim.app import Ledger

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[1]
N = 120


def test_the_configurations_demo_recommends_the_cheapest_go(project: Path) -> None:
    shutil.copy(REPO / "tasks" / "triage_configs.yaml", project / "tasks")
    shutil.copytree(REPO / "tasks" / "prompts", project / "tasks" / "prompts")
    result = CliRunner().invoke(main, ["run", str(project / "tasks" / "triage_configs.yaml"), "-n", str(N),
                                       "--run-id", "demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "which of 4 candidate configurations can replace claude-sonnet-5-5?" in result.output

    billed = Ledger.read(project / ".evalkit" / "simulator" / "billing.jsonl")
    answers = [entry for entry in billed if entry["mode"] == "batch"]
    # the reference once per sample, each configuration once per sample (warm-up requests included):
    # Sonnet answers as the reference and as sonnet-low, Haiku in three configurations; nothing twice
    assert len(answers) == len(billed) == 5 * N
    assert sum(entry["model"] == "claude-sonnet-5-5" for entry in answers) == 2 * N
    assert sum(entry["model"] == "claude-haiku-5-5" for entry in answers) == 3 * N
    assert len({entry["body_sha256"] for entry in answers}) == 5 * N

    folder = project / "reports" / "triage-configs" / "demo"
    summary = json.loads((folder / "summary.json").read_text())
    selection = summary["selection"]
    configs = {c["name"]: c for c in selection["configurations"]}
    assert list(configs) == ["haiku", "haiku-fewshot", "haiku-high", "sonnet-low"]
    assert configs["haiku-high"]["setup"]["effort"] == "high" and configs["haiku-fewshot"]["prompt_variant"]
    passing = [c for c in configs.values() if c["go"]]
    assert passing, "the demo should show a configuration within the margin"
    cheapest = min(passing, key=lambda c: c["cost_per_1k_usd"])
    assert selection["recommended"] == cheapest["name"]
    assert "at most 5%" in selection["error_statement"]
    assert f"recommended: {cheapest['name']}" in result.output
    [gap] = selection["prompt_gaps"]
    assert (gap["base"], gap["variant"]) == ("haiku", "haiku-fewshot")
    assert sum(row["n"] for row in gap["labels"]) == N
    # every configuration's own evidence, and the picture, tables and advice in the top report
    for name in configs:
        page = folder / "configs" / name / "report.html"
        link = re.search(r'href="([^"]*history\.html)"', page.read_text())
        assert link and (page.parent / link.group(1)).resolve() == (folder.parent / "history.html").resolve()
        assert (folder.parent / "history.html").is_file()
    html = (folder / "report.html").read_text()
    for section in ('id="configurations-plot"', 'id="configurations-table"', 'id="prompt-gap-1"',
                    'id="verbosity-table"', 'id="caching-profile-table"'):
        assert section in html
    assert {v["configuration"] for v in summary["verbosity"] if v["role"] == "candidate"} == set(configs)
    assert "hourly_share profile" in summary["projection"]["caching_profile"]["assumption"]
