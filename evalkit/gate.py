"""The CI regression gate: a run compared with a committed baseline, with CI-friendly outputs.

Checks, each a JUnit test case:

* **decision** — NO-GO fails; INCONCLUSIVE is exit 3 unless told to pass or fail.
* **quality** — the candidate's per-sample outcomes (correct vs gold, or agreement with the reference),
  paired by sample id with the baseline's: fails only when Tango's test shows a drop beyond the
  tolerance (noise between two runs does not fail a build).
* **routing drift** — the stored routing threshold must still meet its quality target on today's
  answers (Learn-then-Test p-value at the stored threshold ≤ δ).
* **cost** — mean cost per request (real-time rates) may not rise more than the cost tolerance.

A **routed deployment** (``--deployment routed`` or ``gate: {deployment: routed}`` in the task: the
candidate answers and escalates to the reference below the threshold ``evalkit tune`` wrote to
routing.json) is expected to be NO-GO on replacement, so the decision is not gated (INVALID-RUN still
is). In its place:

* **routed quality** — what the deployment answers (the reference's answer where it escalates, the
  candidate's elsewhere) at the shipped threshold, paired by sample id with the baseline's routed
  outcomes: fails on a drop beyond the tolerance by Tango's test, like the quality check;
* **escalation** — the share of requests escalated at the shipped threshold may not rise more than the
  escalation tolerance (default 5 points) over the baseline's: escalations are what the routed
  deployment pays the reference for.

The shipped threshold is routing.json's (``--routing``), by default the one the baseline was saved with.

Exit codes: 0 pass, 1 regression or NO-GO, 2 usage/config error, 3 inconclusive (configurable).
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import ValidationError

from evalkit._io import atomic_write_json, atomic_write_text
from evalkit._lazy import lazy
from evalkit._typed import Typed
from evalkit.errors import EXIT_INCONCLUSIVE, EXIT_INVALID_RUN, EXIT_OK, EXIT_REGRESSION, ConfigError
from evalkit.record.model import RunRecord
from evalkit.record.rows import SampleRow
from evalkit.routing.router import RoutingFile, load_routing_file
from evalkit.routing.rule import should_escalate
from evalkit.spec import TaskSpec
from evalkit.stats.decision import tango_interval, tango_statistic

scipy_stats = lazy("scipy.stats")

BASELINE_SCHEMA: Final = 2
EXIT_PASS = EXIT_OK


Deployment = Literal["replacement", "routed"]


@dataclass(frozen=True)
class GateOptions:
    tolerance: float = 0.02  # allowed quality drop vs baseline (fraction)
    cost_tolerance: float = 0.10  # allowed relative rise in cost per request
    inconclusive: Literal["exit3", "pass", "fail"] = "exit3"
    alpha: float = 0.05
    deployment: Deployment | None = None  # None: the task's gate.deployment (replacement without a task)
    escalation_tolerance: float | None = None  # routed: allowed rise of the escalation rate (None: task's)
    routing: Path | None = None  # routing.json holding the shipped threshold (None: the baseline's)

    def for_task(self, task: TaskSpec) -> GateOptions:
        """These options with what they leave open taken from the task's ``gate:`` section."""
        tolerance = self.escalation_tolerance
        if tolerance is None:
            tolerance = task.gate.escalation_tolerance
        return replace(self, deployment=self.deployment or task.gate.deployment,
                       escalation_tolerance=tolerance)


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


class BaselineRouted(Typed):
    """The routed deployment at the baseline: what it answered per sample at its threshold."""

    threshold: float
    quality: float
    escalation_rate: float
    outcomes: dict[str, bool]  # sample id -> the deployment's answer was right (gold) / agreed


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
    routed: BaselineRouted | None = None


def _scored(rows: Sequence[SampleRow], mode: str) -> Iterator[tuple[SampleRow, bool, bool]]:
    """(row, candidate right, reference right) for every scored row; in reference mode the reference is
    the yardstick (right) and the candidate is right when it agrees."""
    for row in rows:
        if mode == "gold":
            c, r = row.scores.candidate_correct, row.scores.reference_correct
        else:
            c, r = row.scores.agree, True
        if c is not None and r is not None:
            yield row, c, r


def routed_outcomes(rows: Sequence[SampleRow], mode: str, threshold: float, *,
                    honour_flag: bool) -> tuple[dict[str, bool], int]:
    """(sample id -> the routed deployment's answer is right, escalations) at ``threshold``: the
    reference answers where the candidate escalates (in reference mode it is the yardstick: right)."""
    outcomes: dict[str, bool] = {}
    escalated = 0
    for row, c, r in _scored(rows, mode):
        up, _ = should_escalate(row.candidate.answer, threshold, honour_flag=honour_flag)
        escalated += int(up)
        outcomes[row.id] = bool(r if up else c)
    return outcomes, escalated


def _routed(rows: Sequence[SampleRow], mode: str, routing: BaselineRouting | None) -> BaselineRouted | None:
    if routing is None:
        return None
    outcomes, escalated = routed_outcomes(rows, mode, routing.threshold,
                                          honour_flag=routing.honour_escalate_flag)
    if not outcomes:
        return None
    return BaselineRouted(threshold=routing.threshold, quality=sum(outcomes.values()) / len(outcomes),
                          escalation_rate=escalated / len(outcomes), outcomes=outcomes)


def _outcomes(rows: Sequence[SampleRow], mode: str) -> dict[str, bool]:
    values = {row.id: (row.scores.candidate_correct if mode == "gold" else row.scores.agree) for row in rows}
    return {sample_id: bool(value) for sample_id, value in values.items() if value is not None}


def _cost_per_request(record: RunRecord) -> float | None:
    usage = record.models_usage
    answered = max(usage["candidate"].answered if "candidate" in usage else 0, 1)
    total = sum(usage[role].cost_without_batch_discount_usd.total for role in ("candidate", "reference")
                if role in usage)
    return total / answered if total else None


def make_baseline(record: RunRecord, rows: Sequence[SampleRow], routing: RoutingFile | None) -> Baseline:
    mode = record.scoring_mode
    provenance = record.provenance
    stored = (BaselineRouting(threshold=routing.threshold, target_loss=routing.target_loss,
                              delta=routing.delta, honour_escalate_flag=routing.honour_escalate_flag)
              if routing is not None and routing.threshold is not None else None)
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
        routing=stored,
        routed=_routed(rows, mode, stored),
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


def compare(record: RunRecord, rows: Sequence[SampleRow], baseline: Baseline,
            options: GateOptions) -> list[Check]:
    checks: list[Check] = []
    if baseline.task != record.task_name:
        raise ConfigError(f"baseline is for task '{baseline.task}', this run is '{record.task_name}'")
    verdict = record.decision.verdict
    if options.deployment == "routed":
        return _routed_checks(record, rows, baseline, options)
    status: dict[str, Literal["pass", "fail", "invalid"]] = {"GO": "pass", "NO-GO": "fail",
                                                             "INVALID-RUN": "invalid"}
    checks.append(Check("decision", status.get(verdict, "inconclusive"),
                        f"{verdict}: {record.decision.reason}"))
    if verdict == "INVALID-RUN":  # the other checks would compare broken evidence with the baseline
        return checks
    checks.append(_quality_check(record, rows, baseline, options))
    checks.append(_routing_check(record, rows, baseline.routing))
    checks.append(_cost_check(record, baseline, options))
    return checks


ROUTED_HINT = ("run `evalkit tune TASK.yaml` (it writes routing.json with the threshold to ship), then "
               "`evalkit baseline save TASK.yaml` (it stores the routed outcomes at that threshold), and "
               "commit the baseline")


def _shipped(baseline: Baseline, options: GateOptions) -> BaselineRouting:
    if options.routing is not None:
        shipped = load_routing_file(options.routing)
        if shipped.threshold is None:
            raise ConfigError(f"{options.routing} has no threshold: its tuning could not certify one",
                              hint=ROUTED_HINT)
        return BaselineRouting(threshold=shipped.threshold, target_loss=shipped.target_loss,
                               delta=shipped.delta, honour_escalate_flag=shipped.honour_escalate_flag)
    if baseline.routing is None:
        raise ConfigError("the gate checks a routed deployment, but the baseline has no routing threshold "
                          "and no --routing routing.json was given", hint=ROUTED_HINT)
    return baseline.routing


def _routed_checks(record: RunRecord, rows: Sequence[SampleRow], baseline: Baseline,
                   options: GateOptions) -> list[Check]:
    verdict = record.decision.verdict
    if verdict == "INVALID-RUN":
        return [Check("decision", "invalid", f"{verdict}: {record.decision.reason}")]
    checks = [Check("decision", "skipped", f"{verdict} on replacing the reference: not gated for a routed "
                    "deployment (the candidate escalates to the reference below its threshold)")]
    shipped = _shipped(baseline, options)
    if baseline.routed is None:
        raise ConfigError("the baseline has no routed outcomes (saved without routing.json, or by an older "
                          "evalkit)", hint=ROUTED_HINT)
    mode = record.scoring_mode
    if mode != baseline.scoring_mode:
        return [*checks, Check("routed quality", "fail",
                               f"scoring mode changed from {baseline.scoring_mode} to {mode}")]
    now, escalated = routed_outcomes(rows, mode, shipped.threshold, honour_flag=shipped.honour_escalate_flag)
    what = "routed accuracy" if mode == "gold" else "routed agreement"
    checks.append(_paired_check("routed quality", what, now, baseline.routed.outcomes, options,
                                f" at threshold {shipped.threshold:.2f}"))
    checks.append(_escalation_check(escalated, len(now), baseline.routed, shipped, options))
    checks.append(_routing_check(record, rows, shipped))
    checks.append(_cost_check(record, baseline, options))
    return checks


def _escalation_check(escalated: int, n: int, before: BaselineRouted, shipped: BaselineRouting,
                      options: GateOptions) -> Check:
    if n == 0:
        return Check("escalation", "skipped", "no answered samples")
    tolerance = options.escalation_tolerance if options.escalation_tolerance is not None else 0.05
    rate = escalated / n
    rise = rate - before.escalation_rate
    low, high = _wilson(escalated, n)
    details = {"escalated": escalated, "n": n, "rate": rate, "baseline_rate": before.escalation_rate,
               "rise": rise, "interval_95": [low, high], "threshold": shipped.threshold}
    text = (f"escalation rate at threshold {shipped.threshold:.2f}: {100 * rate:.1f}% ({escalated} of {n}; "
            f"95% interval [{100 * low:.1f}, {100 * high:.1f}]) vs {100 * before.escalation_rate:.1f}% at "
            f"baseline ({100 * rise:+.1f} points)")
    if rise > tolerance:
        return Check("escalation", "fail", f"{text}: over the {100 * tolerance:g}-point tolerance", details)
    return Check("escalation", "pass", f"{text}; within {100 * tolerance:g} points", details)


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _quality_check(record: RunRecord, rows: Sequence[SampleRow], baseline: Baseline,
                   options: GateOptions) -> Check:
    mode = record.scoring_mode
    if mode != baseline.scoring_mode:
        return Check("quality", "fail", f"scoring mode changed from {baseline.scoring_mode} to {mode}")
    what = "accuracy" if mode == "gold" else "agreement"
    return _paired_check("quality", what, _outcomes(rows, mode), baseline.outcomes, options)


def _paired_check(name: str, what: str, now: dict[str, bool], before: dict[str, bool],
                  options: GateOptions, where: str = "") -> Check:
    """Tango's paired test of a drop beyond the tolerance, samples paired by id."""
    common = sorted(set(now) & set(before))
    if len(common) < 20:
        return Check(name, "skipped", f"only {len(common)} samples in common with the baseline; need 20")
    b = sum(1 for i in common if before[i] and not now[i])  # got worse
    c = sum(1 for i in common if not before[i] and now[i])  # got better
    n = len(common)
    drop = (b - c) / n
    t = tango_statistic(b, c, n, options.tolerance)
    z = scipy_stats.norm.ppf(1 - options.alpha)
    low, high = tango_interval(b, c, n, confidence=1 - 2 * options.alpha)
    details = {"n": n, "worse": b, "better": c, "drop": drop, "interval_90": [low, high], "tango_t": t}
    text = (f"{what}{where} change on {n} shared samples: {100 * -drop + 0.0:+.1f} points ({b} worse, {c} "
            f"better; 90% interval of the drop [{100 * low:.1f}, {100 * high:.1f}])")
    if t >= z:
        return Check(name, "fail", f"regression: {text} is beyond the {100 * options.tolerance:g}-point "
                     "tolerance", details)
    return Check(name, "pass", f"{text}; no drop beyond {100 * options.tolerance:g} points shown",
                 details)


def _routing_check(record: RunRecord, rows: Sequence[SampleRow], stored: BaselineRouting | None) -> Check:
    if stored is None:
        return Check("routing", "skipped", "the baseline has no routing threshold")
    threshold, target, delta = stored.threshold, stored.target_loss, stored.delta
    mode = record.scoring_mode
    harm = 0
    n = 0
    for row, c, r in _scored(rows, mode):
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
