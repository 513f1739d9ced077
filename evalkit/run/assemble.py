"""From a finished session to the run record: score, decide, route, price, and write it all down typed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from evalkit._hashing import digest
from evalkit._version import __version__
from evalkit.backends import Backend
from evalkit.cost.estimate import Estimate
from evalkit.cost.projection import Projection, project, role_costs
from evalkit.cost.totals import possible_double_billing, result_cost, totals
from evalkit.cost.verbosity import TokenAdvice, token_advice
from evalkit.providers.execute import CallResult
from evalkit.record.model import (
    BackendInfo,
    BatchSummary,
    CachingInfo,
    CostSummary,
    DatasetInfo,
    ExecutionInfo,
    ModelSetup,
    ModelsInfo,
    ModelUsage,
    PricingInfo,
    PromptInfo,
    Provenance,
    ReferenceNoise,
    RunRecord,
    SequentialInfo,
    SequentialLook,
    TaskInfo,
)
from evalkit.record.rows import LazyRows
from evalkit.routing.analysis import RoutingAnalysis, analyse_routing
from evalkit.run.options import RunOptions
from evalkit.run.prepare import Prepared
from evalkit.run.session import Session
from evalkit.scoring.answers import parse_answer
from evalkit.scoring.metrics import compute_metrics, outcome_counts
from evalkit.scoring.samples import (
    ROLES,
    SampleResult,
    ScoredSample,
    decision_measure,
    score_calls,
    scoring_mode,
)
from evalkit.sim.coverage import SimulatorFacts
from evalkit.stats.decision import decide, invalid_run, wilson_interval
from evalkit.stats.groups import GroupDecision, decide_families, split
from evalkit.stats.validity import Truncation, Validity, assess, truncation_of


@dataclass(frozen=True)
class Assembled:
    record: RunRecord
    rows: LazyRows
    results: list[SampleResult]


def reference_noise(prepared: Prepared, calls: list[CallResult], margin: float) -> ReferenceNoise | None:
    """The reference's agreement with itself on the repeated samples (``decision.reference_noise``)."""
    repeats = {c.request.sample_id: c for c in calls if c.request.replicate == 1}
    if not repeats:
        return None
    firsts = {c.request.sample_id: c for c in calls
              if c.request.replicate == 0 and c.request.role == "reference"}
    pairs = []
    for sample_id, repeat in repeats.items():
        first = parse_answer(firsts[sample_id].response, firsts[sample_id].error, prepared.task.output)
        second = parse_answer(repeat.response, repeat.error, prepared.task.output)
        if first.ok and second.ok:
            pairs.append(first.label == second.label)
    if not pairs:
        return None
    agreement = sum(pairs) / len(pairs)
    low, high = wilson_interval(sum(pairs), len(pairs), confidence=0.95)
    meaningful = (1 - agreement) < margin
    note = (f"the reference agrees with itself on {100 * agreement:.1f}% of {len(pairs)} repeated samples "
            f"(95% CI {100 * low:.1f}–{100 * high:.1f}%)")
    if not meaningful:
        note += (f": its own disagreement ({100 * (1 - agreement):.1f} points) is at least the "
                 f"{100 * margin:.1f}-point margin, so no candidate can be shown to be within it")
    return ReferenceNoise(n=len(pairs), self_agreement=agreement, interval=(low, high),
                          margin_meaningful=meaningful, note=note)


def _segment_of(column: str) -> Callable[[ScoredSample], str | None]:
    return lambda row: row.sample.segments.get(column)


def group_decisions(scored: list[ScoredSample], prepared: Prepared) -> dict[str, dict[str, GroupDecision]]:
    """The decision repeated within each label and each segment column, as one Holm-adjusted family."""
    task = prepared.task
    gold = scoring_mode(scored) == "gold"

    def label_of(row: ScoredSample) -> str | None:
        if gold:
            return row.sample.label
        return row.reference.label if row.reference.ok else None

    dimensions: dict[str, dict[str, list[ScoredSample]]] = {}
    if task.output.kind == "classification":
        dimensions["label"] = split(scored, label_of)
    for column in task.dataset.segment_columns:
        dimensions[column] = split(scored, _segment_of(column))
    return decide_families(dimensions, margin=task.decision.margin, alpha=task.decision.alpha,
                           relative=task.decision.margin_type == "relative",
                           min_size=task.decision.min_group_size)


def _outputs(calls: list[CallResult], role: str) -> list[tuple[str | None, int, bool]]:
    return [(c.response.stop_reason, c.response.usage.output_tokens, c.response.thought) for c in calls
            if c.request.role == role and c.request.replicate == 0 and c.response is not None
            and c.response.mode != "log"]


def truncations(prepared: Prepared, session: Session, answered: set[str]) -> list[Truncation]:
    """Answers lost to max_tokens per role (candidate, reference, and the reference as judge)."""
    task = prepared.task
    calls = [c for c in session.calls if c.request.sample_id in answered]
    out = []
    for role in ("candidate", "reference"):
        settings = task.models.role(role)
        outputs = _outputs(calls, role)
        if outputs:
            out.append(truncation_of(role, settings.model, outputs, settings.max_tokens))
    if session.judge_calls:
        first = session.judge_calls[0].request
        out.append(truncation_of("judge", first.model, _outputs(session.judge_calls, "judge"),
                                 int(first.params.get("max_tokens", 0))))
    return out


def validity(prepared: Prepared, session: Session, results: list[SampleResult], *,
             simulated: bool) -> Validity:
    """The validity gate over this run's evidence (see :mod:`evalkit.stats.validity`)."""
    task = prepared.task
    scored = [r.scored for r in results]
    labels = task.output.label_names if task.output.kind == "classification" else []
    facts = SimulatorFacts.none()
    if simulated:
        facts = SimulatorFacts.of(prepared.settings, labels, [r.sample.text for r in results])
    return assess(scored, bounds=task.decision.validity,
                  truncation=truncations(prepared, session, {r.sample.id for r in results}), labels=labels,
                  gold=scoring_mode(scored) == "gold", simulated=simulated, simulator_corpus=facts.corpus,
                  missing_labels=facts.missing_labels, leaked=facts.leaked)


def _source(prepared: Prepared, role: str, simulated: bool) -> str:
    """Where a role's answers came from: recorded (a log), the simulator, or the live API."""
    log = prepared.logs.get(role)
    if log is not None:
        return f"recorded: {log.path}"
    return "called (simulated)" if simulated else "called"


def _batch_summary(session: Session) -> BatchSummary:
    """Batch ids behind every answer used (including cached ones) and what this run did."""
    responses = [c.response for c in session.calls if c.response is not None]
    answered_by = sorted({r.batch_id for r in responses if r.batch_id})
    counts = {"answer_batch_ids": answered_by,
              "answers_from_batches": sum(1 for r in responses if r.mode == "batch")}
    if session.batches is None:
        return BatchSummary(**counts)
    return BatchSummary(**counts, **session.batches.__dict__)


def _projection(results: list[SampleResult], prepared: Prepared, routing: RoutingAnalysis,
                batch_cache_hit_rate: float) -> Projection:
    """Production cost at the threshold that would ship (its in-sample rate), the held-out rate beside it."""
    escalation, held_out, source = None, None, "no routing analysis"
    if routing.available:
        if routing.chosen is not None and routing.cross_fitted is not None:
            escalation = routing.chosen.escalation_rate
            source = f"the shipped threshold t = {routing.chosen.t:.2f}"
            held_out = routing.cross_fitted.escalation_rate
        elif routing.seed_default is not None:
            escalation, source = routing.seed_default.escalation_rate, "the seed's default threshold 0.75"
    production = prepared.task.production
    return project(results, prepared.settings.pricing, daily_requests=production.daily_requests,
                   days_per_month=production.days_per_month, escalation_rate=escalation,
                   escalation_rate_held_out=held_out, escalation_source=source,
                   hourly_share=production.hourly_share, batch_every_minutes=production.batch_every_minutes,
                   batch_hit_rate=production.batch_cache_hit_rate,
                   batch_cache_hit_rate=batch_cache_hit_rate)


def verbosity(results: list[SampleResult], prepared: Prepared) -> list[TokenAdvice]:
    """Output-token advice for each called model (a recorded log has no usage to learn from)."""
    task = prepared.task
    monthly = task.production.daily_requests * task.production.days_per_month
    advice = [token_advice(results, role, task, prepared.settings.pricing, monthly_requests=monthly,
                           configuration=task.configuration_name if role == "candidate" else None)
              for role in ROLES]
    return [item for item in advice if item is not None]


def _sequential(session: Session, results: list[SampleResult], prepared: Prepared) -> SequentialInfo | None:
    run = session.sequential
    if run is None:
        return None
    pricing = prepared.settings.pricing
    per_sample = (sum(result_cost(r, role, pricing).total for r in results for role in ROLES)
                  / max(len(results), 1))
    return SequentialInfo(looks=run.looks, boundaries=run.boundaries,
                          history=[SequentialLook(n=n, boundary=b, verdict=v, statistic=s)
                                   for n, b, v, s in run.history],
                          stopped_at=run.stopped_at, n_max=run.n_max, samples_saved=run.samples_saved,
                          cost_saved_usd=round(per_sample * run.samples_saved, 6))


def assemble(prepared: Prepared, session: Session, *, backend: Backend, options: RunOptions, run_id: str,
             started: datetime, execute_seconds: float, concurrency: int, estimate: Estimate,
             max_cost: float | None) -> Assembled:
    """Score the answers, decide, analyse routing, price everything and build the record."""
    task, settings = prepared.task, prepared.settings
    answered = session.sequential.stopped_at if session.sequential else len(prepared.samples.samples)
    results = score_calls(task, prepared.samples.samples[:answered], session.calls, session.judged,
                          outputs=prepared.outputs)
    scored = [result.scored for result in results]
    relative = task.decision.margin_type == "relative"
    fixed = decide(scored, margin=task.decision.margin, alpha=task.decision.alpha, relative=relative,
                   rows_available=prepared.samples.rows_available, measure=decision_measure(task))
    decision = session.decision or fixed
    # SIMULATED means some answer came from the simulator: recorded answers never are, whatever the backend.
    called = [c for c in session.calls if c.response is not None and c.response.mode != "log"]
    simulated = any(c.response.simulated for c in called if c.response is not None) or (
        backend.simulated and prepared.calls_models)
    valid = validity(prepared, session, results, simulated=simulated)
    routing = analyse_routing(results, role_costs(results, settings.pricing), options.routing,
                              memo_dir=settings.cache_dir / "derived")  # no refit of cached answers
    if not valid.valid:
        decision = invalid_run(decision.mode, decision.margin, decision.alpha, decision.n,
                               f"the evidence cannot support a verdict: {valid.summary}")
        routing = RoutingAnalysis(available=False, why="the run is INVALID-RUN: its answers are no evidence")
    model_totals = totals(results, settings.pricing)
    stats = session.stats
    provenance = Provenance(
        evalkit_version=__version__, run_id=run_id, created_at=started.isoformat(timespec="seconds"),
        finished_at=datetime.now(UTC).isoformat(timespec="milliseconds"), simulated=simulated,
        backend=BackendInfo(kind=backend.kind, endpoint=backend.provider.endpoint,
                            description=backend.description, platform=backend.platform),
        mode=options.mode,
        task=TaskInfo(name=task.name, file=str(task.task_file), spec_hash=task.spec_hash),
        models=ModelsInfo(candidate=task.models.candidate.model, reference=task.models.reference.model,
                          setup={role: ModelSetup(**task.models.role(role).__dict__) for role in ROLES},
                          reference_source=_source(prepared, "reference", simulated),
                          candidate_source=_source(prepared, "candidate", simulated)),
        prompt=PromptInfo(system_hash=digest(prepared.renderer.system),
                          templates_hash=digest([task.prompt.system, task.prompt.user])),
        pricing=PricingInfo(as_of=settings.pricing.as_of, source=settings.pricing.source,
                            batch_discount=settings.pricing.batch_discount,
                            priced_for=settings.pricing.priced_for))
    samples = prepared.samples
    record = RunRecord(
        provenance=provenance,
        dataset=DatasetInfo(source=samples.dataset_source, hash=samples.dataset_hash,
                            rows_available=samples.rows_available, sample_size=len(samples.samples),
                            seed=task.sample.seed, sample_hash=samples.sample_hash, notes=samples.notes),
        execution=ExecutionInfo(requests_sent=stats.requests_sent, cache_hits=stats.cache_hits,
                                retries=stats.retries, possibly_billed_twice=stats.possibly_billed_twice,
                                timeouts=stats.timeouts, shared_with_other_runs=stats.shared,
                                answered=sum(1 for c in session.calls
                                             if not c.from_cache and c.response is not None),
                                seconds=round(execute_seconds, 3), errors=stats.errors,
                                deduplicated=stats.deduplicated, by_model=stats.by_model,
                                concurrency=concurrency, cache_mode=options.cache_mode),
        batch=_batch_summary(session),
        scoring_mode=scoring_mode(scored),
        outcomes=outcome_counts(scored),
        metrics=compute_metrics(scored, task),
        estimate=estimate,
        budget_usd=max_cost,
        decision=decision,
        decision_fixed_sample=fixed if session.sequential else None,
        sequential=_sequential(session, results, prepared),
        group_decisions=group_decisions(scored, prepared) if valid.valid else {},
        validity=valid,
        reference_noise=reference_noise(prepared, session.calls, decision.margin),
        routing=routing,
        projection=_projection(results, prepared, routing, estimate.batch_cache_hit_rate),
        models_usage={role: ModelUsage.of(model_totals[role]) for role in ROLES},
        caching={role: CachingInfo.of(prepared.cache_plans[role], model_totals[role]) for role in ROLES},
        lint=prepared.findings,
        cost_usd=CostSummary.of(model_totals, possible_double_billing(session.calls, settings.pricing)
                                + session.orphaned_usd),
        verbosity=verbosity(results, prepared),
    )
    return Assembled(record=record, rows=LazyRows(results, settings.pricing), results=results)
