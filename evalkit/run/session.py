"""All model calls of a run: the task's requests (at once, or look by look with ``--sequential``), the
reference's repeats, and the judge's requests — each through the response cache, in real time or batches."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from evalkit.backends import Backend
from evalkit.config import Settings
from evalkit.cost.estimate import SpendTracker
from evalkit.progress import Progress
from evalkit.prompts.render import ModelRequest
from evalkit.providers.batching import BatchLedger, BatchReport, execute_batch
from evalkit.providers.execute import CallResult, ExecutionStats, execute_realtime
from evalkit.providers.response_cache import ResponseCache, request_key
from evalkit.run.options import RunOptions
from evalkit.run.prepare import Prepared, wants_judge
from evalkit.scoring.judge import judge_params, parse_judge
from evalkit.scoring.samples import SampleResult, decision_measure, score_calls
from evalkit.stats.decision import Decision, decide_sequential_look
from evalkit.stats.sequential import group_sequential_bounds, looks_every
from evalkit.store import open_store


def batch_ledger_dir(settings: Settings) -> Path:
    """Where batch submissions are recorded (beside the response cache)."""
    return settings.cache_dir.parent / "batches"


def open_ledger(settings: Settings) -> BatchLedger:
    """The batch ledger: in the shared store when one is configured, else files beside the cache."""
    return BatchLedger(batch_ledger_dir(settings), open_store(settings))


@dataclass
class SequentialRun:
    looks: list[int]
    boundaries: list[float]
    history: list[tuple[int, float, str, float | None]]  # (n, boundary, verdict, statistic) per look
    stopped_at: int
    n_max: int

    @property
    def samples_saved(self) -> int:
        return self.n_max - self.stopped_at


@dataclass
class Session:
    """What the model calls of a run produced.

    The per-call fields are left out of the repr: ``asyncio.run`` formats the repr of its finished main
    task — result included — when it restores the SIGINT handler (CPython 3.11's ``signal.getsignal``
    builds a ValueError message from the handler, a partial holding that task). With every call's
    message in it, that repr took 10 s and ~650 MB at 10,000 samples."""

    calls: list[CallResult] = field(default_factory=list, repr=False)
    stats: ExecutionStats = field(default_factory=ExecutionStats)
    batches: BatchReport | None = field(default=None, repr=False)
    sequential: SequentialRun | None = None
    decision: Decision | None = field(default=None, repr=False)  # set when a sequential look decided
    judged: dict[str, bool | None] = field(default_factory=dict, repr=False)
    judge_calls: list[CallResult] = field(default_factory=list, repr=False)
    #: The most that attempts of earlier, killed runs may have cost without being reported (USD).
    orphaned_usd: float = 0.0

    def add(self, calls: list[CallResult], stats: ExecutionStats, report: BatchReport | None) -> None:
        self.calls.extend(calls)
        self.stats.merge(stats)
        if report is not None:
            if self.batches is None:
                self.batches = report
            else:
                self.batches.merge(report)


class Executor:
    """Sends one set of requests the way the run was asked to (real time or batches), cache first."""

    def __init__(self, prepared: Prepared, backend: Backend, cache: ResponseCache, options: RunOptions,
                 concurrency: int, progress: Progress, spend: SpendTracker | None) -> None:
        self.prepared, self.backend, self.cache, self.options = prepared, backend, cache, options
        self.concurrency, self.progress, self.spend = concurrency, progress, spend

    async def __call__(self, requests: list[ModelRequest]
                       ) -> tuple[list[CallResult], ExecutionStats, BatchReport | None]:
        calls, stats, report = await self._execute(requests)
        return released(calls, self.backend.provider.endpoint), stats, report

    async def _execute(self, requests: list[ModelRequest]
                       ) -> tuple[list[CallResult], ExecutionStats, BatchReport | None]:
        # Caching pays only if one request writes the prefix before the others read it.
        warmup = any(plan.enabled for plan in self.prepared.cache_plans.values())
        provider = self.backend.provider
        settings = self.prepared.settings
        if self.options.mode == "realtime":
            calls, stats = await execute_realtime(requests, provider, self.cache,
                                                  concurrency=self.concurrency,
                                                  progress=self.progress, label="requests", warmup=warmup,
                                                  on_response=self.spend.add if self.spend else None,
                                                  max_retries=settings.max_retries)
            return calls, stats, None
        return await execute_batch(requests, provider, self.cache, open_ledger(settings),
                                   settings.batch, max_wait_s=self.options.max_wait_s,
                                   fallback=self.options.fallback, concurrency=self.concurrency,
                                   progress=self.progress, warmup=warmup and settings.batch.warmup,
                                   max_retries=settings.max_retries, label=self.prepared.task.name,
                                   detach=self.options.detach)


def released(calls: list[CallResult], endpoint: str) -> list[CallResult]:
    """Each answered call with its request released (:meth:`ModelRequest.released`): once the run's
    requests are gone, its answers no longer hold every rendered prompt. A call without an answer keeps
    its whole request: the upper bound of what it may have cost is priced from its prompt."""
    out = []
    for call in calls:
        if call.response is None or call.request.is_released:
            out.append(call)
            continue
        request_key(endpoint, call.request)  # memoised: the key stays readable
        out.append(replace(call, request=call.request.released()))
    return out


def _wants_judge(prepared: Prepared) -> bool:
    return wants_judge(prepared.task)


def judge_requests(prepared: Prepared, results: list[SampleResult]) -> list[ModelRequest]:
    """Ask the reference whether each candidate answer is equivalent to its own (batched like the rest)."""
    return [ModelRequest(sample_id=r.sample.id, role="judge",
                         params=judge_params(prepared.task, r.sample, r.answers["candidate"],
                                             r.answers["reference"]))
            for r in results if r.answers["candidate"].ok and r.answers["reference"].ok]


async def run_session(prepared: Prepared, execute: Executor, options: RunOptions) -> Session:
    """All model calls of a run; the provider's connections are closed at the end, whatever happens."""
    session = Session()
    try:
        if options.sequential:
            await _sequential(session, prepared, execute)
        else:
            session.add(*await execute(prepared.requests + prepared.noise_requests))
        session.calls.extend(prepared.logged)
        if _wants_judge(prepared):
            answered = session.sequential.stopped_at if session.sequential else len(prepared.samples.samples)
            results = score_calls(prepared.task, prepared.samples.samples[:answered], session.calls,
                                  outputs=prepared.outputs)
            requests = judge_requests(prepared, results)
            execute.progress.note(f"asking {prepared.task.models.reference.model} to judge {len(requests)} "
                                  "answer pairs")
            calls, stats, report = await execute(requests)
            session.add(calls, stats, report)
            session.judged = {c.request.sample_id: parse_judge(c.response) for c in calls}
            session.judge_calls = calls
        return session
    finally:
        await execute.backend.provider.aclose()


async def _sequential(session: Session, prepared: Prepared, execute: Executor) -> None:
    """Look every decision.sequential_every samples and stop at the first look that decides."""
    task = prepared.task
    n_max = len(prepared.samples.samples)
    looks = looks_every(n_max, task.decision.sequential_every)
    bounds = group_sequential_bounds([n / n_max for n in looks], task.decision.alpha)
    per_sample = len({request.role for request in prepared.requests})
    history: list[tuple[int, float, str, float | None]] = []
    done = 0
    for index, (n_k, c_k) in enumerate(zip(looks, bounds, strict=True)):
        chunk = prepared.requests[done * per_sample:n_k * per_sample]
        if index == 0:
            chunk = chunk + prepared.noise_requests
        session.add(*await execute(chunk))
        done = n_k
        scored = [r.scored for r in score_calls(task, prepared.samples.samples[:n_k],
                                                session.calls + prepared.logged, outputs=prepared.outputs)]
        look = decide_sequential_look(scored, margin=task.decision.margin, alpha=task.decision.alpha,
                                      boundary=c_k, look=index + 1, looks=len(looks), n_max=n_max,
                                      relative=task.decision.margin_type == "relative",
                                      measure=decision_measure(task))
        history.append((n_k, c_k, look.verdict, look.details.statistic))
        execute.progress.note(f"look {index + 1}/{len(looks)} at n={n_k}: {look.verdict}")
        if look.verdict in ("GO", "NO-GO") or index == len(looks) - 1:
            session.decision = look
            break
    session.sequential = SequentialRun(looks=looks, boundaries=bounds, history=history, stopped_at=done,
                                       n_max=n_max)
