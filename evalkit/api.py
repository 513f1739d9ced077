"""evalkit's library entry points. The CLI only parses arguments and calls these.

Data flows one way through one module per stage::

    spec.load_task -> datasets.load_samples -> prompts.PromptRenderer/build_request
      -> execute (provider + response cache) -> outputs.parse_answer -> scoring -> stats.decide
      -> records/cost -> report.write_run_folder
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from evalkit import __version__
from evalkit._hashing import digest
from evalkit.providers.batching import BatchLedger, BatchReport, Fallback, execute_batch
from evalkit.cost.estimate import BudgetError, check_budget, estimate_cost
from evalkit.providers.response_cache import CacheMode, ResponseCache
from evalkit.cost.prices import call_cost
from evalkit.prompts.prompt_caching import CachePlan, plan_caching
from evalkit.config import Settings, load_settings
from evalkit.datasets import SampleSet, load_samples
from evalkit.errors import DatasetError, UsageError
from evalkit.prompts.lint import Finding, lint_templates
from evalkit.providers.execute import CallResult, ExecutionStats, execute_realtime
from evalkit.scoring.answers import parse_answer
from evalkit.progress import NullProgress, Progress
from evalkit.prompts.render import ModelRequest, PromptRenderer, build_request, output_schema
from evalkit.providers import Backend, ModelResponse, connect
from evalkit.record.rows import ROLES, SampleResult, totals
from evalkit.cost.projection import project
from evalkit.report.html import write_run_folder
from evalkit.routing.analysis import RoutingOptions, analyse_routing, routing_file
from evalkit._io import atomic_write_json
from evalkit.scoring.samples import ScoredSample, check_metric_names, compute_metrics, outcome_counts, scoring_mode
from evalkit.stats.sequential import group_sequential_bounds, looks_every
from evalkit.spec import TaskSpec, load_task
from evalkit.scoring.valuemetrics import judge_params, parse_judge, score_sample
from evalkit.stats.decision import Decision, decide, decide_groups, decide_sequential_look, wilson_interval

SUMMARY_SCHEMA = 1


@dataclass(frozen=True)
class RunOptions:
    offline: bool | None = None  # None: simulator unless ANTHROPIC_API_KEY is set
    mode: Literal["batch", "realtime"] = "batch"
    max_wait_s: float | None = None  # batch mode: stop waiting (resumably) after this long
    fallback: Fallback = "none"  # batch mode: finish items that keep failing in real time
    sequential: bool = False  # group-sequential looks: stop early when the decision is already clear
    routing: RoutingOptions = field(default_factory=RoutingOptions)
    write_report: bool = True
    max_cost: float | None = None  # budget guard (USD); also the task's max_cost_usd
    sample_size: int | None = None
    cache_mode: CacheMode = "use"
    concurrency: int | None = None
    run_id: str | None = None
    reports_dir: Path | None = None


@dataclass
class Prepared:
    """Everything a run needs before the first request: validated task, sample, requests."""

    task: TaskSpec
    settings: Settings
    samples: SampleSet
    renderer: PromptRenderer
    requests: list[ModelRequest]
    cache_plans: dict[str, CachePlan]
    findings: list[Finding]
    logged: list[CallResult] = field(default_factory=list)  # reference answers from a production log
    spend: SpendTracker | None = None


class SpendTracker:
    """Running spend of a real-time run; tells the executor to stop once the budget is reached."""

    def __init__(self, pricing: Any, limit: float) -> None:
        self.pricing, self.limit, self.spent = pricing, limit, 0.0

    def add(self, request: ModelRequest, response: Any) -> bool:
        self.spent += call_cost(self.pricing, request.model, response.usage).total
        return self.spent < self.limit

    @property
    def exceeded(self) -> bool:
        return self.spent >= self.limit


@dataclass
class RunResult:
    folder: Path
    summary: dict[str, Any]
    decision: Decision
    results: list[SampleResult] = field(repr=False)

    @property
    def simulated(self) -> bool:
        return bool(self.summary["simulated"])


def prepare(task: str | Path | TaskSpec, *, sample_size: int | None = None, offline: bool = True,
            settings: Settings | None = None, mode: str = "batch") -> Prepared:
    """Load and check everything that can be checked without calling a model."""
    if not isinstance(task, TaskSpec):
        task = load_task(task)
    settings = settings or load_settings(task.base_dir)
    check_metric_names(task)
    for model in (task.models.candidate, task.models.reference):
        settings.pricing.price_for(model)  # no price, no run: never a silent $0
    if sample_size is not None and sample_size < 1:
        raise UsageError(f"--sample-size must be at least 1, got {sample_size}")
    samples = load_samples(task, cache_dir=settings.cache_dir, offline=offline, size=sample_size)
    findings = lint_templates(task)
    renderer = PromptRenderer(task)
    schema = output_schema(task.output) if task.output.structured else None
    plans = plan_caching(task, renderer.system, schema, mode=mode)
    roles = ("candidate",) if task.models.reference_log else ROLES
    logged = load_reference_log(task, samples) if task.models.reference_log else []
    if logged and task.decision.reference_noise:
        raise task.error("decision.reference_noise", "cannot measure reference noise from a log of responses",
                         hint="remove decision.reference_noise, or models.reference_log to call the reference")
    requests = []
    for sample in samples.samples:
        prompt = renderer.render(sample)
        requests.extend(build_request(task, role, sample, prompt, cache_ttl=plans[role].ttl) for role in roles)
    return Prepared(task=task, settings=settings, samples=samples, renderer=renderer, requests=requests,
                    cache_plans=plans, findings=findings, logged=logged)


def load_reference_log(task: TaskSpec, samples: SampleSet) -> list[CallResult]:
    """Reference answers from recorded production responses, as calls that cost nothing now."""
    path = Path(str(task.models.reference_log))
    path = path if path.is_absolute() else task.base_dir / path
    where = task.source.line_of("models.reference_log") if task.source else None
    place = f"{task.task_file}:{where}" if where else str(task.task_file)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"{place}: models.reference_log: cannot read {path}: {exc.strerror}") from None
    by_id: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(entry, dict) or "id" not in entry or not ("output" in entry or "message" in entry):
            raise DatasetError(f"{path}:{number}: each line needs 'id' and 'output' (text) or 'message' (Message JSON)")
        by_id[str(entry["id"])] = entry
    missing = [s.id for s in samples.samples if s.id not in by_id]
    if missing:
        raise DatasetError(f"{path}: no recorded reference response for {len(missing)} sampled ids "
                           f"(e.g. {', '.join(missing[:5])})", hint="log every sampled id, or sample from logged ids")
    calls = []
    for sample in samples.samples:
        entry = by_id[sample.id]
        message = entry.get("message") or {
            "type": "message", "role": "assistant", "model": task.models.reference, "stop_reason": "end_turn",
            "content": [{"type": "text", "text": str(entry["output"])}], "usage": {}}
        request = ModelRequest(sample_id=sample.id, role="reference", params={"model": task.models.reference})
        calls.append(CallResult(request=request, response=ModelResponse(message=message, mode="log"), error=None,
                                from_cache=True))
    return calls


def _run_id(prepared: Prepared, now: datetime) -> str:
    stamp = now.strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{digest([prepared.task.spec_hash, prepared.samples.sample_hash])[:6]}"


def batch_ledger_dir(settings: Settings) -> Path:
    """Where batch submissions are recorded (beside the response cache)."""
    return settings.cache_dir.parent / "batches"


async def _execute(requests: list[ModelRequest], prepared: Prepared, backend: Backend, cache: ResponseCache,
                   options: RunOptions, concurrency: int, progress: Progress
                   ) -> tuple[list[CallResult], ExecutionStats, BatchReport | None]:
    # Caching pays only if one request writes the prefix before the others read it.
    warmup = any(plan.enabled for plan in prepared.cache_plans.values())
    if options.mode == "realtime":
        calls, stats = await execute_realtime(requests, backend.provider, cache, concurrency=concurrency,
                                              progress=progress, label="requests", warmup=warmup,
                                              on_response=prepared.spend.add if prepared.spend else None)
        return calls, stats, None
    ledger = BatchLedger(batch_ledger_dir(prepared.settings))
    return await execute_batch(requests, backend.provider, cache, ledger, prepared.settings.batch,
                               max_wait_s=options.max_wait_s, fallback=options.fallback,
                               concurrency=concurrency, progress=progress,
                               warmup=warmup and prepared.settings.batch.warmup)


def _sample_results(prepared: Prepared, calls: list[CallResult], upto: int,
                    judged: dict[str, bool | None] | None = None) -> list[SampleResult]:
    """Join calls to the first ``upto`` samples, parse their answers and score them."""
    by_sample: dict[str, dict[str, CallResult]] = {}
    for call in calls:
        if call.request.replicate == 0 and call.request.role in ROLES:
            by_sample.setdefault(call.request.sample_id, {})[call.request.role] = call
    results = []
    for sample in prepared.samples.samples[:upto]:
        sample_calls = by_sample[sample.id]
        answers = {role: parse_answer(sample_calls[role].response, sample_calls[role].error, prepared.task.output)
                   for role in ROLES}
        scored = score_sample(sample, answers["candidate"], answers["reference"], prepared.task,
                              judge=(judged or {}).get(sample.id))
        results.append(SampleResult(sample=sample, calls=sample_calls, answers=answers, scored=scored))
    return results


def _wants_judge(task: TaskSpec) -> bool:
    return task.output.kind != "classification" and (
        task.decision.metric == "judge" or "judge" in task.metric_names)


def _judge_requests(prepared: Prepared, results: list[SampleResult]) -> list[ModelRequest]:
    """Ask the reference whether each candidate answer is equivalent to its own (batched like the rest)."""
    return [ModelRequest(sample_id=r.sample.id, role="judge",
                         params=judge_params(prepared.task, r.sample, r.answers["candidate"], r.answers["reference"]))
            for r in results if r.answers["candidate"].ok and r.answers["reference"].ok]


@dataclass
class _Session:
    calls: list[CallResult]
    stats: ExecutionStats
    batch_reports: list[BatchReport]
    sequential: dict[str, Any] | None = None
    decision: Decision | None = None  # set when a sequential look decided
    judged: dict[str, bool | None] = field(default_factory=dict)


def _merge_stats(total: ExecutionStats, part: ExecutionStats) -> None:
    total.requests_sent += part.requests_sent
    total.cache_hits += part.cache_hits
    total.errors += part.errors
    total.deduplicated += part.deduplicated
    total.retries += part.retries
    for model, count in part.by_model.items():
        total.by_model[model] = total.by_model.get(model, 0) + count


async def _session(prepared: Prepared, backend: Backend, cache: ResponseCache, options: RunOptions,
                   concurrency: int, progress: Progress, noise: list[ModelRequest]) -> _Session:
    """All model calls of a run: at once, or look by look with --sequential."""
    session = _Session(calls=[], stats=ExecutionStats(), batch_reports=[])
    try:
        await _collect(session, prepared, backend, cache, options, concurrency, progress, noise)
        session.calls.extend(prepared.logged)
        if _wants_judge(prepared.task):
            answered = session.sequential["stopped_at"] if session.sequential else len(prepared.samples.samples)
            requests = _judge_requests(prepared, _sample_results(prepared, session.calls, answered))
            progress.note(f"asking {prepared.task.models.reference} to judge {len(requests)} answer pairs")
            calls, stats, report = await _execute(requests, prepared, backend, cache, options, concurrency, progress)
            session.calls.extend(calls)
            _merge_stats(session.stats, stats)
            if report:
                session.batch_reports.append(report)
            session.judged = {c.request.sample_id: parse_judge(c.response.text if c.response else None)
                              for c in calls}
        return session
    finally:
        await backend.provider.aclose()


async def _collect(session: _Session, prepared: Prepared, backend: Backend, cache: ResponseCache,
                   options: RunOptions, concurrency: int, progress: Progress, noise: list[ModelRequest]) -> None:
    """The task's own requests (and the reference repeats): all at once, or look by look with --sequential."""
    task = prepared.task
    if not options.sequential:
        calls, stats, report = await _execute(prepared.requests + noise, prepared, backend, cache, options,
                                              concurrency, progress)
        session.calls, session.stats = calls, stats
        session.batch_reports = [report] if report else []
        return
    n_max = len(prepared.samples.samples)
    looks = looks_every(n_max, task.decision.sequential_every)
    bounds = group_sequential_bounds([n / n_max for n in looks], task.decision.alpha)
    per_sample = len({request.role for request in prepared.requests})
    history = []
    done = 0
    for index, (n_k, c_k) in enumerate(zip(looks, bounds, strict=True)):
        chunk = prepared.requests[done * per_sample:n_k * per_sample]
        if index == 0:
            chunk = chunk + noise
        calls, stats, report = await _execute(chunk, prepared, backend, cache, options, concurrency, progress)
        session.calls.extend(calls)
        _merge_stats(session.stats, stats)
        if report:
            session.batch_reports.append(report)
        done = n_k
        scored = [r.scored for r in _sample_results(prepared, session.calls, n_k)]
        look = decide_sequential_look(scored, margin=task.decision.margin, alpha=task.decision.alpha,
                                      boundary=c_k, look=index + 1, looks=len(looks), n_max=n_max,
                                      relative=task.decision.margin_type == "relative")
        history.append({"n": n_k, "boundary": c_k, "verdict": look.verdict,
                        "statistic": look.details.get("statistic")})
        progress.note(f"look {index + 1}/{len(looks)} at n={n_k}: {look.verdict}")
        if look.verdict in ("GO", "NO-GO") or index == len(looks) - 1:
            session.decision = look
            break
    session.sequential = {"looks": looks, "boundaries": bounds, "history": history,
                          "stopped_at": done, "n_max": n_max, "samples_saved": n_max - done}


def _noise_requests(prepared: Prepared) -> list[ModelRequest]:
    """The reference asked a second time on the first N samples, to measure its self-agreement."""
    count = min(prepared.task.decision.reference_noise, len(prepared.samples.samples))
    chosen = {s.id for s in prepared.samples.samples[:count]}
    # metadata.user_id marks the repeat as a separate request (the real API samples every call anew;
    # the simulator draws again only when asked like this, so retries and re-sends stay reproducible).
    return [replace(r, replicate=1, params={**r.params, "metadata": {"user_id": "evalkit-replicate-1"}})
            for r in prepared.requests if r.role == "reference" and r.sample_id in chosen]


def _reference_noise(prepared: Prepared, calls: list[CallResult], margin: float) -> dict[str, Any] | None:
    repeats = {c.request.sample_id: c for c in calls if c.request.replicate == 1}
    if not repeats:
        return None
    firsts = {c.request.sample_id: c for c in calls if c.request.replicate == 0 and c.request.role == "reference"}
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
    return {"n": len(pairs), "self_agreement": agreement, "interval": [low, high],
            "margin_meaningful": meaningful, "note": note}


def _group_decisions(scored: list[ScoredSample], prepared: Prepared) -> dict[str, Any]:
    task = prepared.task
    relative = task.decision.margin_type == "relative"
    gold = scoring_mode(scored) == "gold"

    def label_of(row: ScoredSample) -> str | None:
        if gold:
            return row.sample.label
        return row.reference.label if row.reference.ok else None

    out: dict[str, Any] = {}
    if task.output.kind == "classification":
        out["label"] = {k: v.to_dict() for k, v in decide_groups(
            scored, label_of, margin=task.decision.margin, alpha=task.decision.alpha, relative=relative).items()}
    for column in task.dataset.segment_columns:
        out[column] = {k: v.to_dict() for k, v in decide_groups(
            scored, lambda row, column=column: row.sample.segments.get(column), margin=task.decision.margin,
            alpha=task.decision.alpha, relative=relative).items()}
    return out


def _batch_summary(reports: list[BatchReport], calls: list[CallResult]) -> dict[str, Any]:
    """Batch ids behind every answer used (including cached ones) and what this run did."""
    answered_by = sorted({c.response.batch_id for c in calls if c.response is not None and c.response.batch_id})
    data: dict[str, Any] = {"answer_batch_ids": answered_by,
                            "answers_from_batches": sum(1 for c in calls if c.response is not None
                                                        and c.response.mode == "batch")}
    if reports:
        merged = reports[0].to_dict()
        for report in reports[1:]:
            for key, value in report.to_dict().items():
                if isinstance(value, list):
                    merged[key] = sorted(set(merged[key]) | set(value))
                elif isinstance(value, dict):
                    for name, count in value.items():
                        merged[key][name] = merged[key].get(name, 0) + count
                else:
                    merged[key] += value
        data.update(merged)
    return data


def _projection(results: list[SampleResult], settings: Settings, task: TaskSpec,
                routing: dict[str, Any]) -> dict[str, Any]:
    escalation, source = None, "no routing analysis"
    if routing.get("available"):
        if routing.get("chosen"):
            escalation, source = routing["cross_fitted"]["escalation_rate"], "calibrated threshold (held out)"
        else:
            escalation, source = routing["seed_default"]["escalation_rate"], "the seed's default threshold 0.75"
    return project(results, settings.pricing, daily_requests=task.production.daily_requests,
                   days_per_month=task.production.days_per_month, escalation_rate=escalation,
                   escalation_source=source)


def _sequential_summary(session: _Session, results: list[SampleResult], settings: Settings
                        ) -> dict[str, Any] | None:
    if session.sequential is None:
        return None
    data = dict(session.sequential)
    answered = max(len(results), 1)
    per_sample = sum(r.cost(role, settings.pricing).total for r in results for role in ROLES) / answered
    data["cost_saved_usd"] = round(per_sample * data["samples_saved"], 6)
    return data


def run_task(task_path: str | Path, options: RunOptions | None = None, *,
             progress: Progress | None = None, backend: Backend | None = None) -> RunResult:
    """Evaluate a task end to end and write its report folder."""
    options = options or RunOptions()
    progress = progress or NullProgress()
    started = datetime.now(UTC)
    task = load_task(task_path)
    settings = load_settings(task.base_dir)
    backend = backend or connect(settings, offline=options.offline)
    progress.note(("SIMULATED RUN: " if backend.kind == "simulator" else "") + f"using the {backend.description}")
    prepared = prepare(task, sample_size=options.sample_size, offline=backend.kind == "simulator",
                       settings=settings, mode=options.mode)
    for note in prepared.samples.notes:
        progress.note(f"note: {note}")
    for finding in prepared.findings:
        progress.note(finding.render())
    for role, plan in prepared.cache_plans.items():
        if not plan.enabled:
            progress.note(f"prompt caching off for the {role} ({plan.model}): {plan.reason}")

    concurrency = options.concurrency or settings.concurrency
    noise = _noise_requests(prepared)
    max_cost = options.max_cost if options.max_cost is not None else task.max_cost_usd
    with ResponseCache(settings.cache_dir, options.cache_mode) as cache:
        estimate = estimate_cost(prepared.requests + noise, cache, backend.provider.endpoint, settings.pricing,
                                 prepared.cache_plans, batch=options.mode == "batch")
        if estimate.requests:
            progress.note(estimate.describe())
        check_budget(estimate, max_cost)
        if max_cost is not None:
            prepared.spend = SpendTracker(settings.pricing, max_cost)
        execute_started = time.perf_counter()
        session = asyncio.run(_session(prepared, backend, cache, options, concurrency, progress, noise))
        execute_seconds = time.perf_counter() - execute_started
    if prepared.spend is not None and prepared.spend.exceeded:
        raise BudgetError(
            f"stopped at the budget of ${max_cost:.4f} after spending ${prepared.spend.spent:.4f}; every answer "
            "received is in the response cache",
            hint="re-run with a higher --max-cost to finish: cached answers are not paid for again")
    calls, stats = session.calls, session.stats
    answered = session.sequential["stopped_at"] if session.sequential else len(prepared.samples.samples)
    results = _sample_results(prepared, calls, answered, session.judged)

    scored = [result.scored for result in results]
    relative = task.decision.margin_type == "relative"
    fixed = decide(scored, margin=task.decision.margin, alpha=task.decision.alpha, relative=relative)
    decision = session.decision or fixed
    routing = analyse_routing(results, settings.pricing, options.routing)
    noise_summary = _reference_noise(prepared, calls, decision.margin)
    if noise_summary is not None:
        progress.note(noise_summary["note"])
    simulated = backend.simulated or any(
        call.response is not None and call.response.simulated for call in calls)
    model_totals = totals(results, settings.pricing)
    run_id = options.run_id or _run_id(prepared, started)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}", run_id):
        raise UsageError(f"--run-id {run_id!r} must be letters, digits, '.', '_' or '-'")
    summary = {
        "schema": SUMMARY_SCHEMA,
        "evalkit_version": __version__,
        "run_id": run_id,
        "created_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "simulated": simulated,
        "backend": {"kind": backend.kind, "endpoint": backend.provider.endpoint,
                    "description": backend.description},
        "mode": options.mode,
        "batch": _batch_summary(session.batch_reports, calls),
        "task": {"name": task.name, "file": str(task.task_file), "spec_hash": task.spec_hash},
        "models": {"candidate": task.models.candidate, "reference": task.models.reference,
                   "reference_source": "production log " + str(task.models.reference_log)
                   if task.models.reference_log else "called"},
        "dataset": {
            "source": prepared.samples.dataset_source, "hash": prepared.samples.dataset_hash,
            "rows_available": prepared.samples.rows_available, "sample_size": len(prepared.samples.samples),
            "seed": task.sample.seed, "sample_hash": prepared.samples.sample_hash,
            "notes": prepared.samples.notes,
        },
        "prompt": {"system_hash": digest(prepared.renderer.system),
                   "templates_hash": digest([task.prompt.system, task.prompt.user])},
        "execution": {"requests_sent": stats.requests_sent, "cache_hits": stats.cache_hits, "retries": stats.retries,
                      "seconds": round(execute_seconds, 3),
                      "errors": stats.errors, "deduplicated": stats.deduplicated, "by_model": stats.by_model,
                      "concurrency": concurrency, "cache_mode": options.cache_mode},
        "scoring_mode": scoring_mode(scored),
        "outcomes": outcome_counts(scored),
        "metrics": compute_metrics(scored, task),
        "estimate": estimate.to_dict(),
        "budget_usd": max_cost,
        "decision": decision.to_dict(),
        "routing": routing,
        "projection": _projection(results, settings, task, routing),
        "decision_fixed_sample": fixed.to_dict() if session.sequential else None,
        "sequential": _sequential_summary(session, results, settings),
        "group_decisions": _group_decisions(scored, prepared),
        "reference_noise": noise_summary,
        "models_usage": {role: model_totals[role].to_dict() for role in ROLES},
        "caching": {role: {"plan": prepared.cache_plans[role].to_dict(), **model_totals[role].caching()}
                    for role in ROLES},
        "lint": [finding.to_dict() for finding in prepared.findings],
        "cost_usd": {
            "answers": round(sum(t.cost.total for t in model_totals.values()), 6),
            "answers_without_batch_discount": round(sum(t.cost_standard.total for t in model_totals.values()), 6),
            "batch_savings": round(sum(t.cost_standard.total - t.cost.total for t in model_totals.values()), 6),
            "cache_savings": round(sum(t.cost_uncached.total - t.cost.total for t in model_totals.values()), 6),
            "this_run": round(sum(t.cost_this_run.total for t in model_totals.values()), 6),
        },
        "pricing": {"as_of": settings.pricing.as_of, "source": settings.pricing.source,
                    "batch_discount": settings.pricing.batch_discount},
    }
    rows = [result.to_row(settings.pricing) for result in results]
    reports_dir = options.reports_dir or settings.reports_dir
    folder = reports_dir / task.name / run_id
    if options.write_report:
        write_run_folder(folder, summary, rows)
    return RunResult(folder=folder, summary=summary, decision=decision, results=results)


@dataclass
class TuneResult:
    analysis: dict[str, Any]
    routing: dict[str, Any]
    path: Path
    requests_sent: int
    summary: dict[str, Any]


def tune_task(task_path: str | Path, routing: RoutingOptions, *, offline: bool | None = None,
              mode: Literal["batch", "realtime"] = "batch", sample_size: int | None = None,
              out: Path | None = None, progress: Progress | None = None) -> TuneResult:
    """Re-run the routing analysis from cached responses only (zero API requests) and write routing.json.

    ``mode`` must be the mode the answers were produced in: it shapes the request bodies (cache TTL)
    and therefore the cache keys.
    """
    options = RunOptions(offline=offline, mode=mode, sample_size=sample_size, cache_mode="read-only",
                         routing=routing, write_report=False)
    result = run_task(task_path, options, progress=progress)
    summary = result.summary
    analysis = summary["routing"]
    if not analysis.get("available"):
        raise UsageError(f"cannot tune: {analysis.get('why')}")
    task = load_task(task_path)
    evidence = {"run_from_cache": True, "samples": analysis["n"], "dataset_hash": summary["dataset"]["hash"],
                "sample_hash": summary["dataset"]["sample_hash"], "spec_hash": summary["task"]["spec_hash"],
                "system_prompt_hash": summary["prompt"]["system_hash"], "simulated": summary["simulated"],
                "pricing_as_of": summary["pricing"]["as_of"], "created_at": summary["finished_at"]}
    content = routing_file(analysis, task_name=task.name, candidate=task.models.candidate,
                           reference=task.models.reference, evidence=evidence)
    settings = load_settings(task.base_dir)
    path = out or (settings.reports_dir / task.name / "routing.json")
    atomic_write_json(path, content)
    return TuneResult(analysis=analysis, routing=content, path=path,
                      requests_sent=summary["execution"]["requests_sent"], summary=summary)


def estimate_task(task_path: str | Path, *, mode: Literal["batch", "realtime"] = "batch",
                  offline: bool | None = None, sample_size: int | None = None):  # type: ignore[no-untyped-def]
    """The cost estimate of a run, without sending anything."""
    task = load_task(task_path)
    settings = load_settings(task.base_dir)
    backend = connect(settings, offline=offline)
    prepared = prepare(task, sample_size=sample_size, offline=backend.kind == "simulator", settings=settings,
                       mode=mode)
    with ResponseCache(settings.cache_dir, "read-only") as cache:
        return estimate_cost(prepared.requests + _noise_requests(prepared), cache, backend.provider.endpoint,
                             settings.pricing, prepared.cache_plans, batch=mode == "batch")
