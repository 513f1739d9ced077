"""One evaluation run, start to finish: prepare → estimate and budget → model calls → the record."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from evalkit._hashing import digest
from evalkit.backends import Backend, connect
from evalkit.config import Settings
from evalkit.cost.estimate import Estimate, SpendTracker, check_budget, estimate_cost
from evalkit.progress import Progress
from evalkit.providers.response_cache import CacheMode, ResponseCache
from evalkit.record.model import RunRecord
from evalkit.record.rows import SampleRow
from evalkit.run.assemble import assemble
from evalkit.run.options import RunOptions
from evalkit.run.prepare import Prepared, prepare
from evalkit.run.session import Executor, run_session
from evalkit.scoring.samples import SampleResult
from evalkit.sim.coverage import SimulatorFacts
from evalkit.spec import TaskSpec

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """A finished run: its record, its per-sample rows, and where its report folder is (or would be)."""

    folder: Path
    record: RunRecord
    cache_dir: Path  # where the paid answers are kept (re-runs read them from here)
    rows: list[SampleRow] = field(repr=False)
    results: list[SampleResult] = field(repr=False)

    @property
    def simulated(self) -> bool:
        return self.record.simulated


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


def estimate_run(prepared: Prepared, backend: Backend, *, mode: str,
                 cache_mode: CacheMode = "read-only") -> Estimate:
    """What the run's requests the response cache cannot answer would cost (nothing is sent)."""
    with ResponseCache(prepared.settings.cache_dir, cache_mode) as cache:
        return estimate_cost(prepared.requests + prepared.noise_requests, cache, backend.provider.endpoint,
                             prepared.settings.pricing, prepared.cache_plans, batch=mode == "batch")


def run_evaluation(task: TaskSpec, settings: Settings, options: RunOptions, *, progress: Progress,
                   backend: Backend | None = None) -> RunResult:
    """Evaluate ``task``: every answer through the response cache, then the typed record and rows."""
    options.validate()
    started = datetime.now(UTC)
    backend = backend or connect(settings, offline=options.offline)
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
    with ResponseCache(settings.cache_dir, options.cache_mode) as cache:
        estimate = estimate_cost(prepared.requests + prepared.noise_requests, cache,
                                 backend.provider.endpoint, settings.pricing, prepared.cache_plans,
                                 batch=options.mode == "batch")
        if estimate.requests_to_send:
            progress.note(estimate.describe())
        check_budget(estimate, max_cost)
        execute = Executor(prepared, backend, cache, options, concurrency, progress, spend)
        execute_started = time.perf_counter()
        session = asyncio.run(run_session(prepared, execute, options))
        execute_seconds = time.perf_counter() - execute_started
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
