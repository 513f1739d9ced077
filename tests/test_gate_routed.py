"""The gate on a routed deployment (issue 20, part 3): the task `tune` routes is NO-GO on replacement, so
the replacement gate fails it whatever happens; the routed gate checks the routed quality and the
escalation rate at the shipped threshold against the baseline's instead."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli import main

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def _shipped(project: Path, threshold: float) -> Path:
    """A routing.json shipping another threshold than the one the baseline was saved with."""
    source = json.loads((project / "reports" / "triage" / "routing.json").read_text())
    source["threshold"] = threshold
    path = project / f"routing-{threshold}.json"
    path.write_text(json.dumps(source))
    return path


def test_the_gate_checks_a_routed_deployment(project: Path) -> None:
    task = str(project / "tasks" / "triage.yaml")
    common = ["--mode", "realtime", "-n", "300", "--offline", "-q"]
    code, out = _cli("run", task, *common, "--run-id", "base")
    assert code == 0 and "NO-GO" in out, out
    baseline = project / "baselines" / "triage.json"
    code, out = _cli("baseline", "save", task, "--out", str(baseline))
    assert code == 0, out
    code, out = _cli("gate", task, "--baseline", str(baseline), "--deployment", "routed", *common)
    assert code == 2 and "no routing threshold" in out and "evalkit tune" in out, out

    code, out = _cli("tune", task, "--target-loss", "0.03", "--mode", "realtime", "-n", "300", "--offline")
    assert code == 0, out
    code, out = _cli("baseline", "save", task, "--run", "base", "--out", str(baseline))
    assert code == 0, out
    saved = json.loads(baseline.read_text())
    threshold = saved["routing"]["threshold"]
    assert saved["routed"]["threshold"] == threshold and 0 < saved["routed"]["escalation_rate"] < 1

    # Replacement: NO-GO fails the build even though nothing changed.
    code, out = _cli("gate", task, "--baseline", str(baseline), *common)
    assert code == 1 and "gate decision: fail" in out
    # Routed, chosen by flag: nothing changed, so it passes; the NO-GO is not gated.
    code, out = _cli("gate", task, "--baseline", str(baseline), "--deployment", "routed", *common)
    assert code == 0, out
    assert "gate decision: skipped" in out and "gate routed quality: pass" in out
    assert "gate escalation: pass" in out and "+0.0 points" in out
    junit = max((project / "reports" / "triage").glob("*/junit.xml"), key=lambda p: p.stat().st_mtime)
    names = {case.get("name") for case in ET.parse(junit).getroot().iter("testcase")}
    assert names == {"decision", "routed quality", "escalation", "routing", "cost"}

    # Chosen in the task: a shipped threshold that escalates far more than the baseline's fails on cost
    # of escalation; one that escalates far less fails on routed quality.
    path = project / "tasks" / "triage.yaml"
    path.write_text(path.read_text() + "\ngate:\n  deployment: routed\n  escalation_tolerance: 0.05\n")
    code, out = _cli("gate", task, "--baseline", str(baseline), "--routing", str(_shipped(project, 0.99)),
                     *common)
    assert code == 1 and "gate escalation: fail" in out and "over the 5-point tolerance" in out, out
    code, out = _cli("gate", task, "--baseline", str(baseline), "--routing", str(_shipped(project, 0.5)),
                     *common)
    assert code == 1 and "gate routed quality: fail" in out and "gate escalation: pass" in out, out
    # The flag wins over the task.
    code, out = _cli("gate", task, "--baseline", str(baseline), "--deployment", "replacement", *common)
    assert code == 1 and "gate decision: fail" in out
