"""Several candidate configurations in one run, sharing one reference.

Each configuration (``models.candidates``: a model with its effort, thinking, max_tokens and prompt
variant) is prepared as the task it would be on its own. The reference's requests are then identical in
every configuration, so the run sends the union of all requests once — one set of batches, one response
cache — and the reference answers each sample once for all of them. Every configuration is then scored,
decided and priced exactly like a single-candidate run (its own record and report folder), and the
selection takes their GO verdicts as one family (:mod:`evalkit.stats.selection`) and recommends the
cheapest configuration shown non-inferior.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from evalkit._hashing import digest
from evalkit.config import Settings
from evalkit.datasets import SampleSet
from evalkit.prompts.render import ModelRequest
from evalkit.providers.execute import CallResult
from evalkit.providers.response_cache import request_key
from evalkit.record.model import (
    ConfigurationResult,
    ModelSetup,
    PromptGap,
    RoutedOption,
    RunRecord,
    Selection,
)
from evalkit.run.assemble import Assembled
from evalkit.run.prepare import Prepared, prepare, wants_judge
from evalkit.run.session import Executor, Session, judge_requests, released
from evalkit.scoring.compare import label_changes
from evalkit.scoring.judge import parse_judge
from evalkit.scoring.samples import ScoredSample, score_calls, scoring_mode
from evalkit.spec import TaskSpec
from evalkit.stats.decision import wilson_interval
from evalkit.stats.selection import family_verdicts, p_go, recommend


def prepare_configurations(task: TaskSpec, settings: Settings, *, sample_size: int | None, offline: bool,
                           mode: str) -> list[Prepared]:
    """Each configuration prepared on the same sample (loaded once)."""
    first = prepare(task.configuration(0), settings, sample_size=sample_size, offline=offline, mode=mode)
    samples: SampleSet = first.samples
    return [first, *(prepare(task.configuration(index), settings, offline=offline, mode=mode, samples=samples)
                     for index in range(1, len(task.models.configurations())))]


def distinct_requests(requests: list[ModelRequest], endpoint: str) -> list[ModelRequest]:
    """Each request once (by its response-cache key), in first-seen order."""
    seen: dict[str, ModelRequest] = {}
    for request in requests:
        seen.setdefault(request_key(endpoint, request), request)
    return list(seen.values())


def _answers_for(requests: list[ModelRequest], by_key: dict[str, CallResult], endpoint: str
                 ) -> list[CallResult]:
    return [replace(by_key[request_key(endpoint, request)], request=request) for request in requests]


async def run_configuration_sessions(prepared: list[Prepared], execute: Executor) -> list[Session]:
    """All model calls of every configuration: one execution of the distinct requests (the shared
    reference asked once), then one of the distinct judge requests; a session per configuration."""
    endpoint = execute.backend.provider.endpoint
    try:
        wanted = [request for p in prepared for request in p.requests + p.noise_requests]
        calls, stats, report = await execute(distinct_requests(wanted, endpoint))
        by_key = {request_key(endpoint, call.request): call for call in calls}
        sessions = []
        for p in prepared:
            session = Session(stats=stats, batches=report)
            # Each configuration's own requests put back (a shared key may stand for another role), released
            # like every executed call: the answers must not hold the rendered prompts again.
            session.calls = released(_answers_for(p.requests + p.noise_requests, by_key, endpoint),
                                     endpoint) + p.logged
            sessions.append(session)
        judging = {index: judge_requests(p, score_calls(p.task, p.samples.samples, sessions[index].calls,
                                                        outputs=p.outputs))
                   for index, p in enumerate(prepared) if wants_judge(p.task)}
        if judging:
            distinct = distinct_requests([r for requests in judging.values() for r in requests], endpoint)
            execute.progress.note(f"asking {prepared[0].task.models.reference.model} to judge "
                                  f"{len(distinct)} answer pairs")
            judge_calls, judge_stats, judge_report = await execute(distinct)
            stats.merge(judge_stats)
            if judge_report is not None and report is not None:
                report.merge(judge_report)
            judged_by_key = {request_key(endpoint, call.request): call for call in judge_calls}
            for index, requests in judging.items():
                own = _answers_for(requests, judged_by_key, endpoint)
                sessions[index].judge_calls = own
                sessions[index].judged = {c.request.sample_id: parse_judge(c.response) for c in own}
        return sessions
    finally:
        await execute.backend.provider.aclose()


# -- the selection ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfigurationRun:
    """One configuration's preparation and its assembled record, rows and results."""

    name: str
    prepared: Prepared
    assembled: Assembled

    @property
    def record(self) -> RunRecord:
        return self.assembled.record

    @property
    def scored(self) -> list[ScoredSample]:
        return [result.scored for result in self.assembled.results]


def _quality(scored: list[ScoredSample]) -> tuple[float | None, tuple[float, float] | None]:
    """Candidate accuracy against gold (or agreement with the reference), with its Wilson interval."""
    gold = scoring_mode(scored) == "gold"
    outcomes = [row.correct("candidate") if gold else row.agree for row in scored]
    known = [bool(o) for o in outcomes if o is not None]
    if not known:
        return None, None
    return sum(known) / len(known), wilson_interval(sum(known), len(known))


def _per_1k(record: RunRecord, role: str) -> float | None:
    profile = record.projection.caching_profile
    if profile is None:
        return None
    model = next((m for m in profile.models if m.role == role), None)
    return None if model is None else 1000 * model.option(model.cheapest).per_request_usd


def _routed(record: RunRecord) -> RoutedOption | None:
    routing, candidate = record.routing, _per_1k(record, "candidate")
    reference = _per_1k(record, "reference (escalations)") or _per_1k(record, "reference")
    if not routing.available or routing.chosen is None or routing.cross_fitted is None or candidate is None \
            or reference is None:
        return None
    held_out = routing.cross_fitted
    return RoutedOption(threshold=routing.chosen.t, escalation_rate=held_out.escalation_rate,
                        quality_loss=held_out.quality_loss,
                        cost_per_1k_usd=candidate + held_out.escalation_rate * reference,
                        pays=bool(routing.pays))


def _result(run: ConfigurationRun, primary: bool, tested_p: float, adjusted_p: float, go: bool
            ) -> ConfigurationResult:
    record, task = run.record, run.prepared.task
    decision = record.decision
    quality, interval = _quality(run.scored)
    setup = task.models.role("candidate")
    return ConfigurationResult(
        name=run.name, primary=primary, setup=ModelSetup(**setup.__dict__),
        prompt_variant=task.models.candidate.prompt is not None,
        system_hash=digest(run.prepared.renderer.system), folder=f"configs/{run.name}",
        verdict=decision.verdict, reason=decision.reason, loss=decision.loss,
        loss_interval=decision.loss_interval, quality=quality, quality_interval=interval, p_go=tested_p,
        adjusted_p=adjusted_p, go=go, cost_per_1k_usd=_per_1k(record, "candidate") or 0.0,
        eval_cost_usd=record.models_usage["candidate"].cost_usd.total, routed=_routed(record))


def _prompt_gaps(runs: list[ConfigurationRun], results: list[ConfigurationResult]) -> list[PromptGap]:
    """Each prompt variant against the task's prompt on the same model and settings (else the primary)."""
    gaps = []
    for run, result in zip(runs, results, strict=True):
        if not result.prompt_variant:
            continue
        same = [(other_run, other) for other_run, other in zip(runs, results, strict=True)
                if not other.prompt_variant and other.setup == result.setup]
        base_run, base = same[0] if same else (runs[0], results[0])
        if base.name == result.name:
            continue
        closed = result.go and not base.go
        if closed:
            note = (f"the gap was closed by prompting: {base.name} is {base.verdict} with the task's prompt, "
                    f"{result.name} is GO with its variant (family-wise)")
        elif result.go and base.go:
            note = f"both prompts are GO; the variant changes the quality by {_points(result, base)}"
        else:
            note = (f"the variant does not make {result.setup.model} GO ({result.name}: {result.verdict}); "
                    "it "
                    f"changes the quality by {_points(result, base)}")
        gaps.append(PromptGap(base=base.name, variant=result.name, base_verdict=base.verdict,
                              variant_verdict=result.verdict, closed=closed, note=note,
                              labels=label_changes(base_run.scored, run.scored)))
    return gaps


def _points(a: ConfigurationResult, b: ConfigurationResult) -> str:
    if a.quality is None or b.quality is None:
        return "an unknown amount"
    return f"{100 * (a.quality - b.quality):+.1f} points"


def select(task: TaskSpec, runs: list[ConfigurationRun]) -> Selection:
    """The family-wise GO verdicts over every configuration and the cheapest that passes."""
    decision = task.decision
    costs = [_per_1k(run.record, "candidate") or 0.0 for run in runs]
    pvalues = [p_go(run.record.decision) for run in runs]
    tested = family_verdicts(pvalues, costs, alpha=decision.alpha, method=decision.selection)
    results = [_result(run, index == 0, t.p, t.adjusted_p, t.go)
               for index, (run, t) in enumerate(zip(runs, tested, strict=True))]
    chosen = recommend(tested, costs)
    how = ("Holm's step-down procedure" if decision.selection == "holm" else
           "fixed-sequence testing from the most to the least expensive")
    statement = (f"{len(runs)} configurations tested as one family with {how}: the chance that any "
                 f"configuration whose true loss exceeds the {100 * decision.margin:.1f}-point margin is "
                 f"called GO — and so of a wrong recommendation — is at most {100 * decision.alpha:.0f}%")
    invalid = runs[0].record.decision.verdict == "INVALID-RUN" and all(
        run.record.decision.verdict == "INVALID-RUN" for run in runs)
    if invalid:
        reason = "no recommendation: the run is INVALID-RUN (see the validity problems)"
    elif chosen is None:
        reason = ("no configuration is shown within the margin after the family-wise correction; keep the "
                  "reference, or look at the routed options and the undecided configurations")
    else:
        best = results[chosen]
        reference = _per_1k(runs[chosen].record, "reference")
        versus = f" vs ${reference:.4f} for always the reference" if reference else ""
        reason = (f"{best.name} is the cheapest configuration shown within the margin: "
                  f"${best.cost_per_1k_usd:.4f}"
                  f" per 1,000 requests{versus} (adjusted p = {best.adjusted_p:.3g})")
    return Selection(method=decision.selection, alpha=decision.alpha, margin=decision.margin,
                     error_statement=statement, configurations=results,
                     recommended=None if chosen is None or invalid else results[chosen].name, reason=reason,
                     prompt_gaps=_prompt_gaps(runs, results))
