"""evalkit's library entry points. The CLI only parses arguments and calls these.

Data flows one way through one module per stage::

    spec.load_task -> datasets.load_samples -> prompts.PromptRenderer/build_request
      -> execute (provider + response cache) -> outputs.parse_answer -> scoring -> stats.decide
      -> records/cost -> report.write_run_folder
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from evalkit import __version__
from evalkit._hashing import digest
from evalkit.batching import BatchLedger, BatchReport, Fallback, execute_batch
from evalkit.cache import CacheMode, ResponseCache
from evalkit.caching import CachePlan, plan_caching
from evalkit.config import Settings, load_settings
from evalkit.datasets import SampleSet, load_samples
from evalkit.errors import UsageError
from evalkit.lint import Finding, lint_templates
from evalkit.execute import CallResult, ExecutionStats, execute_realtime
from evalkit.outputs import parse_answer
from evalkit.progress import NullProgress, Progress
from evalkit.prompts import ModelRequest, PromptRenderer, build_request, output_schema
from evalkit.providers import Backend, connect
from evalkit.records import ROLES, SampleResult, totals
from evalkit.report import write_run_folder
from evalkit.scoring import check_metric_names, compute_metrics, outcome_counts, scoring_mode
from evalkit.spec import TaskSpec, load_task
from evalkit.stats import Decision, decide

SUMMARY_SCHEMA = 1


@dataclass(frozen=True)
class RunOptions:
    offline: bool | None = None  # None: simulator unless ANTHROPIC_API_KEY is set
    mode: Literal["batch", "realtime"] = "batch"
    max_wait_s: float | None = None  # batch mode: stop waiting (resumably) after this long
    fallback: Fallback = "none"  # batch mode: finish items that keep failing in real time
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
    requests = []
    for sample in samples.samples:
        prompt = renderer.render(sample)
        requests.extend(build_request(task, role, sample, prompt, cache_ttl=plans[role].ttl) for role in ROLES)
    return Prepared(task=task, settings=settings, samples=samples, renderer=renderer, requests=requests,
                    cache_plans=plans, findings=findings)


def _run_id(prepared: Prepared, now: datetime) -> str:
    stamp = now.strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{digest([prepared.task.spec_hash, prepared.samples.sample_hash])[:6]}"


def batch_ledger_dir(settings: Settings) -> Path:
    """Where batch submissions are recorded (beside the response cache)."""
    return settings.cache_dir.parent / "batches"


async def _execute(prepared: Prepared, backend: Backend, cache: ResponseCache, options: RunOptions,
                   concurrency: int, progress: Progress
                   ) -> tuple[list[CallResult], ExecutionStats, BatchReport | None]:
    # Caching pays only if one request writes the prefix before the others read it.
    warmup = any(plan.enabled for plan in prepared.cache_plans.values())
    try:
        if options.mode == "realtime":
            calls, stats = await execute_realtime(prepared.requests, backend.provider, cache,
                                                  concurrency=concurrency, progress=progress, label="requests",
                                                  warmup=warmup)
            return calls, stats, None
        ledger = BatchLedger(batch_ledger_dir(prepared.settings))
        return await execute_batch(prepared.requests, backend.provider, cache, ledger, prepared.settings.batch,
                                   max_wait_s=options.max_wait_s, fallback=options.fallback,
                                   concurrency=concurrency, progress=progress,
                                   warmup=warmup and prepared.settings.batch.warmup)
    finally:
        await backend.provider.aclose()


def _batch_summary(report: BatchReport | None, calls: list[CallResult]) -> dict[str, Any]:
    """Batch ids behind every answer used (including cached ones) and what this run did."""
    answered_by = sorted({c.response.batch_id for c in calls if c.response is not None and c.response.batch_id})
    data: dict[str, Any] = {"answer_batch_ids": answered_by,
                            "answers_from_batches": sum(1 for c in calls if c.response is not None
                                                        and c.response.mode == "batch")}
    if report is not None:
        data.update(report.to_dict())
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
    with ResponseCache(settings.cache_dir, options.cache_mode) as cache:
        calls, stats, batch_report = asyncio.run(_execute(prepared, backend, cache, options, concurrency, progress))

    by_sample: dict[str, dict[str, CallResult]] = {}
    for call in calls:
        by_sample.setdefault(call.request.sample_id, {})[call.request.role] = call
    results = []
    for sample in prepared.samples.samples:
        sample_calls = by_sample[sample.id]
        answers = {role: parse_answer(sample_calls[role].response, sample_calls[role].error, task.output)
                   for role in ROLES}
        results.append(SampleResult(sample=sample, calls=sample_calls, answers=answers))

    scored = [result.scored for result in results]
    decision = decide(scored, margin=task.decision.margin, alpha=task.decision.alpha)
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
        "batch": _batch_summary(batch_report, calls),
        "task": {"name": task.name, "file": str(task.task_file), "spec_hash": task.spec_hash},
        "models": {"candidate": task.models.candidate, "reference": task.models.reference},
        "dataset": {
            "source": prepared.samples.dataset_source, "hash": prepared.samples.dataset_hash,
            "rows_available": prepared.samples.rows_available, "sample_size": len(prepared.samples.samples),
            "seed": task.sample.seed, "sample_hash": prepared.samples.sample_hash,
            "notes": prepared.samples.notes,
        },
        "prompt": {"system_hash": digest(prepared.renderer.system),
                   "templates_hash": digest([task.prompt.system, task.prompt.user])},
        "execution": {"requests_sent": stats.requests_sent, "cache_hits": stats.cache_hits,
                      "errors": stats.errors, "deduplicated": stats.deduplicated, "by_model": stats.by_model,
                      "concurrency": concurrency, "cache_mode": options.cache_mode},
        "scoring_mode": scoring_mode(scored),
        "outcomes": outcome_counts(scored),
        "metrics": compute_metrics(scored, task),
        "decision": decision.to_dict(),
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
    folder = write_run_folder(reports_dir / task.name / run_id, summary, rows)
    return RunResult(folder=folder, summary=summary, decision=decision, results=results)
