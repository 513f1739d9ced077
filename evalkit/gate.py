"""The CI regression gate: a run compared with a committed baseline, with CI-friendly outputs.

Checks, each a JUnit test case:

* **decision** — NO-GO fails; INCONCLUSIVE is exit 3 unless told to pass or fail.
* **quality** — the candidate's per-sample outcomes (correct vs gold, or agreement with the reference),
  paired by sample id with the baseline's: fails only when Tango's test shows a drop beyond the
  tolerance (noise between two runs does not fail a build).
* **routing drift** — the stored routing threshold must still meet its quality target on today's
  answers (Learn-then-Test p-value at the stored threshold ≤ δ).
* **cost** — mean cost per request (real-time rates) may not rise more than the cost tolerance.

Exit codes: 0 pass, 1 regression or NO-GO, 2 usage/config error, 3 inconclusive (configurable).
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import ValidationError

from evalkit._io import atomic_write_json, atomic_write_text
from evalkit._lazy import lazy
from evalkit._typed import Typed
from evalkit.errors import ConfigError
from evalkit.record.model import RunRecord
from evalkit.record.rows import SampleRow
from evalkit.routing.router import RoutingFile
from evalkit.routing.rule import should_escalate
from evalkit.stats.decision import tango_interval, tango_statistic

scipy_stats = lazy("scipy.stats")

BASELINE_SCHEMA: Final = 2
EXIT_PASS, EXIT_REGRESSION, EXIT_USAGE, EXIT_INCONCLUSIVE = 0, 1, 2, 3
EXIT_INVALID_RUN = 7  # the run's evidence cannot support a verdict: neither a pass nor a regression


@dataclass(frozen=True)
class GateOptions:
    tolerance: float = 0.02  # allowed quality drop vs baseline (fraction)
    cost_tolerance: float = 0.10  # allowed relative rise in cost per request
    inconclusive: Literal["exit3", "pass", "fail"] = "exit3"
    alpha: float = 0.05


@dataclass
class Check:
    name: str
    status: Literal["pass", "fail", "inconclusive", "skipped", "invalid"]
    message: str
    details: dict[str, Any] = field(default_factory=dict)


class BaselineModels(Typed):
    candidate: str
    reference: str
    reference_source: str


class BaselineRouting(Typed):
    threshold: float
    target_loss: float
    delta: float
    honour_escalate_flag: bool


class Baseline(Typed):
    """A committed reference point for the gate: one run's per-sample outcomes, quality, cost and routing."""

    schema_version: Literal[2] = BASELINE_SCHEMA
    task: str
    created_at: str
    run_id: str
    simulated: bool
    models: BaselineModels
    spec_hash: str
    system_prompt_hash: str
    scoring_mode: str
    decision: str
    quality: float | None
    outcomes: dict[str, bool]
    cost_per_request_usd: float | None
    routing: BaselineRouting | None


def _outcomes(rows: list[SampleRow], mode: str) -> dict[str, bool]:
    values = {row.id: (row.scores.candidate_correct if mode == "gold" else row.scores.agree) for row in rows}
    return {sample_id: bool(value) for sample_id, value in values.items() if value is not None}


def _cost_per_request(record: RunRecord) -> float | None:
    usage = record.models_usage
    answered = max(usage["candidate"].answered if "candidate" in usage else 0, 1)
    total = sum(usage[role].cost_without_batch_discount_usd.total for role in ("candidate", "reference")
                if role in usage)
    return total / answered if total else None


def make_baseline(record: RunRecord, rows: list[SampleRow], routing: RoutingFile | None) -> Baseline:
    mode = record.scoring_mode
    provenance = record.provenance
    return Baseline(
        task=provenance.task.name,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        run_id=provenance.run_id,
        simulated=provenance.simulated,
        models=BaselineModels(candidate=provenance.models.candidate, reference=provenance.models.reference,
                              reference_source=provenance.models.reference_source),
        spec_hash=provenance.task.spec_hash,
        system_prompt_hash=provenance.prompt.system_hash,
        scoring_mode=mode,
        decision=record.decision.verdict,
        quality=_quality(record),
        outcomes=_outcomes(rows, mode),
        cost_per_request_usd=_cost_per_request(record),
        routing=(BaselineRouting(threshold=routing.threshold, target_loss=routing.target_loss,
                                 delta=routing.delta, honour_escalate_flag=routing.honour_escalate_flag)
                 if routing is not None and routing.threshold is not None else None),
    )


def _quality(record: RunRecord) -> float | None:
    metrics = record.metrics
    if record.scoring_mode == "gold" and metrics.accuracy is not None:
        return metrics.accuracy.candidate.value
    return metrics.agreement.value


def load_baseline(path: Path) -> Baseline:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read baseline {path}: {exc.strerror}",
                          hint="create one with `evalkit baseline save TASK.yaml`") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"baseline {path} is not valid JSON: {exc}",
                          hint="create one with `evalkit baseline save TASK.yaml`") from None
    try:
        return Baseline.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ConfigError(f"{path} is not an evalkit baseline (schema {BASELINE_SCHEMA}): {error['msg']} at "
                          f"{'.'.join(map(str, error['loc'])) or 'the top level'}",
                          hint="create one with `evalkit baseline save TASK.yaml`") from None


def compare(record: RunRecord, rows: list[SampleRow], baseline: Baseline,
            options: GateOptions) -> list[Check]:
    checks: list[Check] = []
    if baseline.task != record.task_name:
        raise ConfigError(f"baseline is for task '{baseline.task}', this run is '{record.task_name}'")
    verdict = record.decision.verdict
    status: dict[str, Literal["pass", "fail", "invalid"]] = {"GO": "pass", "NO-GO": "fail",
                                                             "INVALID-RUN": "invalid"}
    checks.append(Check("decision", status.get(verdict, "inconclusive"),
                        f"{verdict}: {record.decision.reason}"))
    if verdict == "INVALID-RUN":  # the other checks would compare broken evidence with the baseline
        return checks
    checks.append(_quality_check(record, rows, baseline, options))
    checks.append(_routing_check(record, rows, baseline))
    checks.append(_cost_check(record, baseline, options))
    return checks


def _quality_check(record: RunRecord, rows: list[SampleRow], baseline: Baseline,
                   options: GateOptions) -> Check:
    mode = record.scoring_mode
    if mode != baseline.scoring_mode:
        return Check("quality", "fail", f"scoring mode changed from {baseline.scoring_mode} to {mode}")
    now, before = _outcomes(rows, mode), baseline.outcomes
    common = sorted(set(now) & set(before))
    if len(common) < 20:
        return Check("quality", "skipped", f"only {len(common)} samples in common with the baseline; need 20")
    b = sum(1 for i in common if before[i] and not now[i])  # got worse
    c = sum(1 for i in common if not before[i] and now[i])  # got better
    n = len(common)
    drop = (b - c) / n
    t = tango_statistic(b, c, n, options.tolerance)
    z = scipy_stats.norm.ppf(1 - options.alpha)
    low, high = tango_interval(b, c, n, confidence=1 - 2 * options.alpha)
    what = "accuracy" if mode == "gold" else "agreement"
    details = {"n": n, "worse": b, "better": c, "drop": drop, "interval_90": [low, high], "tango_t": t}
    text = (f"{what} change on {n} shared samples: {100 * -drop + 0.0:+.1f} points ({b} worse, {c} better; "
            f"90% interval of the drop [{100 * low:.1f}, {100 * high:.1f}])")
    if t >= z:
        return Check("quality", "fail", f"regression: {text} is beyond the {100 * options.tolerance:g}-point "
                     "tolerance", details)
    return Check("quality", "pass", f"{text}; no drop beyond {100 * options.tolerance:g} points shown",
                 details)


def _routing_check(record: RunRecord, rows: list[SampleRow], baseline: Baseline) -> Check:
    stored = baseline.routing
    if stored is None:
        return Check("routing", "skipped", "the baseline has no routing threshold")
    threshold, target, delta = stored.threshold, stored.target_loss, stored.delta
    mode = record.scoring_mode
    harm = 0
    n = 0
    for row in rows:
        if mode == "gold":
            c, r = row.scores.candidate_correct, row.scores.reference_correct
        else:
            c, r = row.scores.agree, True
        if c is None or r is None:
            continue
        n += 1
        escalated, _ = should_escalate(row.candidate.answer, threshold,
                                       honour_flag=stored.honour_escalate_flag)
        harm += int(not escalated and r and not c)
    if n == 0:
        return Check("routing", "skipped", "no answered samples")
    p_value = float(scipy_stats.binom.cdf(harm, n, target))
    details = {"threshold": threshold, "target_loss": target, "quality_loss": harm / n, "ltt_p": p_value}
    text = (f"at the stored threshold {threshold:.2f} the quality loss is {100 * harm / n:.1f} points "
            f"(target {100 * target:g}, LTT p = {p_value:.3f})")
    if p_value > delta:
        return Check("routing", "fail", f"drift: {text}; the target is no longer certified", details)
    return Check("routing", "pass", f"{text}; still certified", details)


def _cost_check(record: RunRecord, baseline: Baseline, options: GateOptions) -> Check:
    now, before = _cost_per_request(record), baseline.cost_per_request_usd
    if not now or not before:
        return Check("cost", "skipped", "no cost per request to compare")
    rise = now / before - 1
    details = {"now_usd": now, "baseline_usd": before, "rise": rise}
    text = f"cost per request ${now:.6f} vs ${before:.6f} at baseline ({100 * rise:+.1f}%)"
    if rise > options.cost_tolerance:
        return Check("cost", "fail", f"{text}: over the {100 * options.cost_tolerance:g}% tolerance", details)
    return Check("cost", "pass", text, details)


def exit_code(checks: list[Check], options: GateOptions) -> int:
    if any(check.status == "invalid" for check in checks):
        return EXIT_INVALID_RUN
    if any(check.status == "fail" for check in checks):
        return EXIT_REGRESSION
    if any(check.status == "inconclusive" for check in checks):
        return {"exit3": EXIT_INCONCLUSIVE, "pass": EXIT_PASS, "fail": EXIT_REGRESSION}[options.inconclusive]
    return EXIT_PASS


def junit_xml(checks: list[Check], *, task: str, run_id: str) -> str:
    suite = ET.Element("testsuite", name=f"evalkit.{task}", tests=str(len(checks)),
                       failures=str(sum(c.status == "fail" for c in checks)),
                       skipped=str(sum(c.status in ("skipped", "inconclusive") for c in checks)))
    for check in checks:
        case = ET.SubElement(suite, "testcase", classname=f"evalkit.{task}", name=check.name)
        if check.status == "fail":
            ET.SubElement(case, "failure", message=check.message).text = json.dumps(
                check.details, default=str)
        elif check.status == "invalid":
            ET.SubElement(case, "error", message=check.message)
        elif check.status in ("skipped", "inconclusive"):
            ET.SubElement(case, "skipped", message=check.message)
        ET.SubElement(case, "system-out").text = check.message
    root = ET.Element("testsuites", name=f"evalkit run {run_id}")
    root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def markdown(record: RunRecord, checks: list[Check], code: int, report_path: Path) -> str:
    icon = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️", "skipped": "➖", "invalid": "🛑"}
    names = {EXIT_PASS: "PASS", EXIT_REGRESSION: "FAIL", EXIT_INVALID_RUN: "INVALID RUN"}
    outcome = names.get(code, "INCONCLUSIVE")
    lines = [f"## evalkit gate: {record.task_name} — {outcome}", ""]
    if record.simulated:
        lines += ["> **SIMULATED** — answers came from evalkit's offline simulator, not from Claude.", ""]
    models = record.provenance.models
    lines += [f"`{models.candidate}` vs `{models.reference}`: **{record.decision.verdict}** — "
              f"{record.decision.reason}", "", "| check | result | detail |", "|---|---|---|"]
    for check in checks:
        lines.append(f"| {check.name} | {icon[check.status]} {check.status} | "
                     f"{check.message.replace('|', '/')} |")
    lines += ["", f"Cost of this run: ${record.cost_usd.this_run:.4f} "
              f"({record.execution.requests_sent} requests, {record.execution.cache_hits} from cache). "
              f"Report: `{report_path}`", ""]
    return "\n".join(lines)


def write_gate_outputs(folder: Path, record: RunRecord, checks: list[Check], code: int,
                       junit_path: Path | None = None) -> dict[str, Path]:
    junit = junit_path or folder / "junit.xml"
    atomic_write_text(junit, junit_xml(checks, task=record.task_name, run_id=record.run_id))
    text = markdown(record, checks, code, folder / "report.html")
    atomic_write_text(folder / "summary.md", text)
    atomic_write_json(folder / "gate.json", {"exit_code": code, "checks": [c.__dict__ for c in checks]})
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return {"junit": junit, "markdown": folder / "summary.md"}
