"""One evaluation run, start to finish: prepare → estimate and budget → model calls → the record."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evalkit._hashing import digest
from evalkit.backends import Backend, connect, run_mode
from evalkit.config import Settings
from evalkit.cost.estimate import Estimate, SpendTracker, check_budget, estimate_cost
from evalkit.cost.prices import attempt_upper_bound
from evalkit.cost.totals import totals
from evalkit.errors import ProviderError, UsageError
from evalkit.progress import Progress
from evalkit.providers.response_cache import CacheMode, ResponseCache, open_cache
from evalkit.record.model import CostSummary, RunRecord
from evalkit.record.rows import LazyRows
from evalkit.run.assemble import assemble
from evalkit.run.configurations import (
    ConfigurationRun,
    distinct_requests,
    prepare_configurations,
    run_configuration_sessions,
    select,
)
from evalkit.run.options import RunOptions
from evalkit.run.prepare import Prepared, prepare
from evalkit.run.session import Executor, Session, run_session
from evalkit.scoring.samples import SampleResult
from evalkit.sim.coverage import SimulatorFacts
from evalkit.spec import TaskSpec

log = logging.getLogger(__name__)


@dataclass
class ConfigurationOutput:
    """One candidate configuration's own record and rows (written to ``configs/<name>/``)."""

    name: str
    record: RunRecord
    rows: LazyRows = field(repr=False)


@dataclass
class RunResult:
    """A finished run: its record, its per-sample rows, and where its report folder is (or would be).
    With several candidate configurations, ``record`` is the primary (first) one's with the selection
    attached, and ``configurations`` holds each configuration's own record."""

    folder: Path
    record: RunRecord
    cache_dir: Path  # where the paid answers are kept (re-runs read them from here)
    rows: LazyRows = field(repr=False)
    results: list[SampleResult] = field(repr=False)
    configurations: list[ConfigurationOutput] = field(default_factory=list, repr=False)

    @property
    def simulated(self) -> bool:
        return self.record.simulated

    def configuration(self, name: str | None) -> tuple[RunRecord, str | None]:
        """The record of the candidate configuration ``name`` (default: the primary) and its name."""
        if not self.configurations:
            if name is not None:
                raise UsageError("--configuration needs a task with models.candidates")
            return self.record, None
        names = [c.name for c in self.configurations]
        name = name or names[0]
        if name not in names:
            raise UsageError(f"the task has no configuration {name!r}", hint=f"one of: {', '.join(names)}")
        return self.configurations[names.index(name)].record, name

    @property
    def failure(self) -> ProviderError | None:
        """Every request this run sent failed: the run is an API failure (exit 4), whatever it decided."""
        execution = self.record.execution
        if not execution.errors or execution.answered:
            return None
        errors = [call.error for result in self.results for call in result.calls.values()
                  if call.error is not None]
        first = errors[0] if errors else None
        return ProviderError(
            f"every request this run sent failed ({execution.errors} errors)"
            + (f"; the first: {first.message}" if first else ""),
            status=first.status if first else None,
            hint=(first.hint + "; " if first and first.hint else "")
            + f"each sample's error is in {self.folder / 'results.jsonl'}")


def _run_id(prepared: Prepared, now: datetime) -> str:
    stamp = now.strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{digest([prepared.task.spec_hash, prepared.samples.sample_hash])[:6]}"


def _announce(prepared: Prepared, backend: Backend, progress: Progress) -> None:
    for role, log in prepared.logs.items():
        progress.note(f"{role} answers are recorded ({log.path}): that model is not called")
    if prepared.requests:
        progress.note(("SIMULATED RUN: " if backend.kind == "simulator" else "")
                      + f"using the {backend.description}")
    task = prepared.task
    if prepared.requests and backend.kind == "simulator" and task.output.kind == "classification":
        facts = SimulatorFacts.of(prepared.settings, task.output.label_names, [])
        progress.note(f"simulator: answering from the corpus {facts.corpus}" if facts.corpus else
                      "simulator: no corpus covers this task's labels; its answers would be guesses")
    for note in prepared.samples.notes:
        progress.note(f"note: {note}")
    for finding in prepared.findings:
        progress.note(finding.render())
    for role, plan in prepared.cache_plans.items():
        if not plan.enabled:
            progress.note(f"prompt caching off for the {role} ({plan.model}): {plan.reason}")


def _batch_cache_hit_rate(settings: Settings, backend: Backend) -> dict[str, Any]:
    """The expected best-effort batch cache hit rate: the in-process simulator's configured one, else the
    estimate's conservative assumption for the real API."""
    if backend.kind != "simulator":
        return {}
    return {"batch_cache_hit_rate": settings.simulator.batch_cache_hit_rate,
            "batch_cache_hit_basis": "the simulator's [simulator] batch_cache_hit_rate"}


def _adopt_orphans(session: Session, cache: ResponseCache, settings: Settings, progress: Progress) -> None:
    """Possible double payments counted by runs that died before their report: this run reports them."""
    orphans = cache.adopt_orphans()
    if not orphans:
        return
    count = sum(o.count for o in orphans)
    session.stats.possibly_billed_twice += count
    session.orphaned_usd += sum(o.count * attempt_upper_bound(settings.pricing, o.model, o.input_tokens,
                                                              o.max_tokens) for o in orphans)
    progress.note(f"{count} attempt(s) of earlier, interrupted runs may have been billed without their "
                  "answer being reported: counted in this run's possibly-billed-twice figures")


def estimate_run(prepared: Prepared, backend: Backend, *, mode: str,
                 cache_mode: CacheMode = "read-only") -> Estimate:
    """What the run's requests the response cache cannot answer would cost (nothing is sent)."""
    with open_cache(prepared.settings, cache_mode) as cache:
        return estimate_cost(prepared.requests + prepared.noise_requests, cache, backend.provider.endpoint,
                             prepared.settings.pricing, prepared.cache_plans, batch=mode == "batch",
                             **_batch_cache_hit_rate(prepared.settings, backend))


def run_evaluation(task: TaskSpec, settings: Settings, options: RunOptions, *, progress: Progress,
                   backend: Backend | None = None) -> RunResult:
    """Evaluate ``task``: every answer through the response cache, then the typed record and rows."""
    options.validate()
    started = datetime.now(UTC)
    backend = backend or connect(settings, offline=options.offline, platform=task.models.platform)
    settings = backend.priced(settings)  # the serving platform's prices, for every cost of the run
    mode, note = run_mode(backend, options.mode, detach=options.detach)
    if note is not None:
        progress.note(note)
        options = replace(options, mode=mode)  # type: ignore[arg-type]
    if len(task.models.configurations()) > 1:
        return _run_configurations(task, settings, options, progress=progress, backend=backend,
                                   started=started)
    prepared = prepare(task, settings, sample_size=options.sample_size, offline=backend.kind == "simulator",
                       mode=options.mode)
    _announce(prepared, backend, progress)
    run_id = options.run_id or _run_id(prepared, started)
    concurrency = options.concurrency or settings.concurrency
    log.info("run %s of task %s: %d samples, %d requests, mode %s, cache %s, concurrency %d", run_id,
             task.name, len(prepared.samples.samples), len(prepared.requests), options.mode,
             options.cache_mode, concurrency)
    max_cost = options.max_cost if options.max_cost is not None else task.max_cost_usd
    spend = SpendTracker(settings.pricing, max_cost) if max_cost is not None else None
    with open_cache(settings, options.cache_mode) as cache:
        estimate = estimate_cost(prepared.requests + prepared.noise_requests, cache,
                                 backend.provider.endpoint, settings.pricing, prepared.cache_plans,
                                 batch=options.mode == "batch", **_batch_cache_hit_rate(settings, backend))
        if estimate.requests_to_send:
            progress.note(estimate.describe())
        check_budget(estimate, max_cost)
        execute = Executor(prepared, backend, cache, options, concurrency, progress, spend)
        execute_started = time.perf_counter()
        session = asyncio.run(run_session(prepared, execute, options))
        execute_seconds = time.perf_counter() - execute_started
        prepared.release_requests()
        if cache.mode != "off":
            _adopt_orphans(session, cache, settings, progress)
    log.info("model calls done in %.1f s: %d sent, %d from the cache, %d failed", execute_seconds,
             session.stats.requests_sent, session.stats.cache_hits, session.stats.errors)
    if spend is not None:
        spend.check()
    assembled = assemble(prepared, session, backend=backend, options=options, run_id=run_id, started=started,
                         execute_seconds=execute_seconds, concurrency=concurrency, estimate=estimate,
                         max_cost=max_cost)
    folder = (options.reports_dir or settings.reports_dir) / task.name / run_id
    log.info("decision %s: %s", assembled.record.decision.verdict, assembled.record.decision.reason)
    return RunResult(folder=folder, record=assembled.record, cache_dir=settings.cache_dir,
                     rows=assembled.rows, results=assembled.results)


def _run_configurations(task: TaskSpec, settings: Settings, options: RunOptions, *, progress: Progress,
                        backend: Backend, started: datetime) -> RunResult:
    """Several candidate configurations: one execution of every distinct request, a record per
    configuration, and the family-wise selection on the primary's record."""
    if options.sequential:
        raise UsageError("--sequential stops one comparison early; with several candidate configurations "
                         "run the whole sample", hint="drop --sequential, or keep one entry in "
                                                      "models.candidates")
    prepared = prepare_configurations(task, settings, sample_size=options.sample_size,
                                      offline=backend.kind == "simulator", mode=options.mode)
    _announce(prepared[0], backend, progress)
    for extra in prepared[1:]:
        for finding in extra.findings:
            progress.note(finding.render())
        plan = extra.cache_plans["candidate"]
        if not plan.enabled:
            progress.note(f"prompt caching off for {extra.task.configuration_name}: {plan.reason}")
    names = ", ".join(p.task.configuration_name for p in prepared)
    progress.note(f"{len(prepared)} candidate configurations share one reference: {names}")
    run_id = options.run_id or _run_id(prepared[0], started)
    concurrency = options.concurrency or settings.concurrency
    max_cost = options.max_cost if options.max_cost is not None else task.max_cost_usd
    spend = SpendTracker(settings.pricing, max_cost) if max_cost is not None else None
    # Estimated and sent as one set: the reference's requests are the same in every configuration.
    union = Prepared(task=task, settings=settings, samples=prepared[0].samples,
                     renderers=prepared[0].renderers,
                     requests=[r for p in prepared for r in p.requests],
                     cache_plans={**prepared[0].cache_plans}, findings=[], logs={})
    with open_cache(settings, options.cache_mode) as cache:
        distinct = distinct_requests(union.requests + prepared[0].noise_requests, backend.provider.endpoint)
        estimate = estimate_cost(distinct, cache, backend.provider.endpoint,
                                 settings.pricing, {**prepared[0].cache_plans}, batch=options.mode == "batch")
        if estimate.requests_to_send:
            progress.note(estimate.describe())
        check_budget(estimate, max_cost)
        execute = Executor(union, backend, cache, options, concurrency, progress, spend)
        execute_started = time.perf_counter()
        sessions = asyncio.run(run_configuration_sessions(prepared, execute))
        execute_seconds = time.perf_counter() - execute_started
        for done in (union, *prepared):
            done.release_requests()
    if spend is not None:
        spend.check()
    runs = []
    for p, session in zip(prepared, sessions, strict=True):
        assembled = assemble(p, session, backend=backend, options=options, run_id=run_id, started=started,
                             execute_seconds=execute_seconds, concurrency=concurrency, estimate=estimate,
                             max_cost=max_cost)
        runs.append(ConfigurationRun(name=p.task.configuration_name, prepared=p, assembled=assembled))
    selection = select(task, runs)
    primary = runs[0].assembled
    # The run paid for the reference once and for every configuration's candidate: that is its cost.
    paid = {"reference": totals(primary.results, settings.pricing)["reference"],
            **{run.name: totals(run.assembled.results, settings.pricing)["candidate"] for run in runs}}
    advice = [item for item in primary.record.verbosity if item.role == "reference"] + [
        item for run in runs for item in run.record.verbosity if item.role == "candidate"]
    record = primary.record.model_copy(update={"selection": selection, "cost_usd": CostSummary.of(paid),
                                               "verbosity": advice})
    folder = (options.reports_dir or settings.reports_dir) / task.name / run_id
    return RunResult(folder=folder, record=record, cache_dir=settings.cache_dir, rows=primary.rows,
                     results=primary.results,
                     configurations=[ConfigurationOutput(name=run.name, record=run.record,
                                                         rows=run.assembled.rows)
                                     for run in runs])
