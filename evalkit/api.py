"""evalkit's library entry points: thin wiring over the stages. The CLI only parses arguments and calls these.

Data flows one way, one package per stage::

    spec → datasets → prompts → providers (response cache, real time or batches) → scoring → stats
      → routing → cost → record → report / gate;  run/ drives a whole evaluation through them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from evalkit import history as history  # `evalkit runs` / `evalkit compare`
from evalkit._io import atomic_write_json
from evalkit.backends import connect, run_mode
from evalkit.config import Settings, load_settings
from evalkit.cost.estimate import Estimate
from evalkit.cost.pricelist import project_price_table as price_table  # noqa: F401 - `evalkit prices`
from evalkit.errors import UsageError
from evalkit.gate import (
    Baseline,
    Check,
    GateOptions,
    compare,
    exit_code,
    load_baseline,
    make_baseline,
    write_gate_outputs,
)
from evalkit.progress import NullProgress, Progress
from evalkit.prompts.lint import Finding
from evalkit.prompts.lint import lint_task as _lint
from evalkit.providers.response_cache import forget_tallies
from evalkit.record.export import export_run as export_results  # noqa: F401 - public: `evalkit export`
from evalkit.record.files import read_record, read_rows, run_folder
from evalkit.record.model import RunRecord
from evalkit.report.html import write_html, write_run_folder
from evalkit.routing.analysis import RoutingAnalysis, RoutingOptions
from evalkit.routing.router import RoutingEvidence, RoutingFile, load_routing_file, routing_file
from evalkit.run import state as state  # `evalkit cache verify|repair`, `evalkit store migrate|verify`
from evalkit.run.options import RunOptions
from evalkit.run.pipeline import RunResult, estimate_run, run_evaluation
from evalkit.run.plan import PlanResult, plan
from evalkit.run.prepare import Prepared, prepare, simulator_preflight, with_task_corpus
from evalkit.run.status import batch_status  # noqa: F401 - public: `evalkit status`
from evalkit.scaffold import Initialised, init_task, setup_demo
from evalkit.spec import TaskSpec, load_task
from evalkit.stats.validity import Problem


def _load(task_path: str | Path | TaskSpec) -> tuple[TaskSpec, Settings]:
    task = task_path if isinstance(task_path, TaskSpec) else load_task(task_path)
    return task, with_task_corpus(task, load_settings(task.base_dir))


def run_task(task_path: str | Path | TaskSpec, options: RunOptions | None = None, *,
             progress: Progress | None = None) -> RunResult:
    """Evaluate a task end to end and write its report folder (unless ``options.write_report`` is False)."""
    options = (options or RunOptions()).validate()
    task, settings = _load(task_path)
    result = run_evaluation(task, settings, options, progress=progress or NullProgress())
    if options.write_report:
        write_run_folder(result.folder, result.record, result.rows)
        for configuration in result.configurations:  # each candidate configuration's full evidence
            write_run_folder(result.folder / "configs" / configuration.name, configuration.record,
                             configuration.rows)
        history.publish_run(settings, result.folder, result.record)  # the shared store's run history, if any
    forget_tallies(settings.cache_dir)  # the record counts what may have been billed twice now
    return result


@dataclass(frozen=True)
class Validation:
    prepared: Prepared
    simulated: bool  # a run would use the offline simulator
    problems: list[Problem]  # what would make that run INVALID-RUN (empty: it can decide)


def validate_task(task_path: str | Path, *, sample_size: int | None = None,
                  offline: bool | None = None) -> Validation:
    """Check the task file, its dataset, prompts and output schema — and, when the run would be offline,
    whether the simulator can answer it — without calling any model."""
    task, settings = _load(task_path)
    prepared = prepare(task, settings, sample_size=sample_size, offline=True)
    simulated = offline if offline is not None else not os.environ.get("ANTHROPIC_API_KEY", "").strip()
    return Validation(prepared=prepared, simulated=simulated,
                      problems=simulator_preflight(prepared) if simulated else [])


def lint_task(task_path: str | Path, *, mode: str = "batch") -> list[Finding]:
    """What would stop prompt caching from paying, with the task file's lines."""
    return _lint(load_task(task_path), mode=mode)


def estimate_task(task_path: str | Path, *, mode: Literal["batch", "realtime"] = "batch",
                  offline: bool | None = None, sample_size: int | None = None) -> Estimate:
    """The cost estimate of a run, without sending anything."""
    task, settings = _load(task_path)
    backend = connect(settings, offline=offline, platform=task.models.platform)
    mode = run_mode(backend, mode)[0]  # type: ignore[assignment]  # Bedrock/Vertex: real time
    prepared = prepare(task, backend.priced(settings), sample_size=sample_size,
                       offline=backend.kind == "simulator", mode=mode)
    return estimate_run(prepared, backend, mode=mode)


def plan_task(task_path: str | Path, *, expected_gap: float, discordance: float = 0.02, power: float = 0.8,
              reference_accuracy: float | None = None, sequential: bool = False) -> PlanResult:
    """Samples the task's decision needs at an expected quality loss (see :mod:`evalkit.run.plan`)."""
    task, settings = _load(task_path)
    return plan(task, settings, expected_gap=expected_gap, discordance=discordance, power=power,
                reference_accuracy=reference_accuracy, sequential=sequential)


@dataclass(frozen=True)
class TuneResult:
    analysis: RoutingAnalysis
    routing: RoutingFile
    path: Path
    requests_sent: int
    record: RunRecord


def tune_task(task_path: str | Path, routing: RoutingOptions, *, offline: bool | None = None,
              mode: Literal["batch", "realtime"] = "batch", sample_size: int | None = None,
              out: Path | None = None, progress: Progress | None = None,
              configuration: str | None = None) -> TuneResult:
    """Re-run the routing analysis from cached responses only (zero API requests) and write routing.json.

    ``mode`` must be the mode the answers were produced in: it shapes the request bodies (cache TTL)
    and therefore the cache keys.
    """
    options = RunOptions(offline=offline, mode=mode, sample_size=sample_size, cache_mode="read-only",
                         routing=routing, write_report=False)
    task, settings = _load(task_path)
    result = run_task(task, options, progress=progress)
    record, name = result.configuration(configuration)
    analysis = record.routing
    if not analysis.available:
        raise UsageError(f"cannot tune: {analysis.why}")
    evidence = RoutingEvidence(
        run_from_cache=True, samples=analysis.n, dataset_hash=record.dataset.hash,
        sample_hash=record.dataset.sample_hash, spec_hash=record.provenance.task.spec_hash,
        system_prompt_hash=record.provenance.prompt.system_hash, simulated=record.simulated,
        pricing_as_of=record.provenance.pricing.as_of, created_at=record.provenance.finished_at)
    content = routing_file(analysis, task_name=task.name, candidate=record.provenance.models.candidate,
                           reference=task.models.reference.model, evidence=evidence, configuration=name)
    path = out or (settings.reports_dir / task.name / "routing.json")
    atomic_write_json(path, content.model_dump(mode="json"))
    return TuneResult(analysis=analysis, routing=content, path=path,
                      requests_sent=record.execution.requests_sent, record=record)


@dataclass(frozen=True)
class GateResult:
    run: RunResult
    checks: list[Check]
    exit_code: int
    junit: Path
    markdown: Path


def check_gate(result: RunResult, baseline_path: Path, options: GateOptions | None = None,
               junit: Path | None = None) -> GateResult:
    """Compare a finished run with a baseline; write JUnit, Markdown (and $GITHUB_STEP_SUMMARY)."""
    options = options or GateOptions()
    checks = compare(result.record, result.rows, load_baseline(baseline_path), options)
    code = exit_code(checks, options)
    outputs = write_gate_outputs(result.folder, result.record, checks, code, junit)
    return GateResult(run=result, checks=checks, exit_code=code, junit=outputs["junit"],
                      markdown=outputs["markdown"])


def gate_task(task_path: str | Path, baseline_path: Path, *, gate: GateOptions | None = None,
              options: RunOptions | None = None, junit: Path | None = None,
              progress: Progress | None = None) -> GateResult:
    """The CI regression gate: run the task and compare it with a committed baseline."""
    if not baseline_path.exists():
        raise UsageError(f"baseline {baseline_path} does not exist",
                         hint="create it with `evalkit baseline save TASK.yaml --out <path>` and commit it")
    load_baseline(baseline_path)  # a broken baseline fails before anything is paid for
    task = load_task(task_path)  # its `gate:` section says which deployment is checked
    gate = (gate or GateOptions()).for_task(task)
    return check_gate(run_task(task, options, progress=progress), baseline_path, gate, junit)


@dataclass(frozen=True)
class SavedBaseline:
    path: Path
    baseline: Baseline


def save_baseline(task_path: str | Path, *, run_id: str | None = None, routing_path: Path | None = None,
                  out: Path | None = None) -> SavedBaseline:
    """Save a finished run (the latest by default) as the baseline the gate compares against."""
    task, settings = _load(task_path)
    runs_dir = settings.reports_dir / task.name
    folder = run_folder(runs_dir, run_id, task_file=task.task_file)
    routing_path = routing_path or (runs_dir / "routing.json")
    routing = load_routing_file(routing_path) if routing_path.exists() else None
    baseline = make_baseline(read_record(folder), read_rows(folder), routing)
    out = out or settings.root / "baselines" / f"{task.name}.json"
    atomic_write_json(out, baseline.model_dump(mode="json"))
    return SavedBaseline(path=out, baseline=baseline)


def render_report(run_dir: str | Path) -> Path:
    """Re-render ``report.html`` of a run folder from its ``summary.json`` and ``results.jsonl`` alone."""
    folder = Path(run_dir)
    page = folder / "report.html"
    write_html(page, read_record(folder), read_rows(folder))
    return page


def init_project(dataset: str | Path, *, folder: str | Path = ".", name: str | None = None,
                 force: bool = False) -> Initialised:
    """Write a task file (and evalkit.toml when there is none) for a dataset (see :mod:`evalkit.scaffold`)."""
    return init_task(Path(dataset), folder=Path(folder), name=name, force=force)


def run_demo(folder: str | Path = "evalkit-demo", options: RunOptions | None = None, *,
             progress: Progress | None = None) -> RunResult:
    """Set up the packaged demo project in ``folder`` (files already there are kept) and run it offline."""
    task = setup_demo(Path(folder))
    return run_task(task, replace(options or RunOptions(), offline=True), progress=progress)


def serve_simulator(*, host: str, port: int, state_dir: Path | None = None,
                    overrides: dict[str, object] | None = None) -> None:
    """Serve the offline simulator over HTTP until interrupted (``evalkit sim serve``); ``overrides``
    replace ``[simulator]`` settings (keys like ``"latency_ms"`` or ``"faults.rate_limit"``)."""
    from evalkit.sim.server import serve  # noqa: PLC0415 - starlette and scikit-learn only when serving

    settings = load_settings()
    serve(settings, host=host, port=port, overrides=dict(overrides or {}),
          state_dir=state_dir or settings.cache_dir.parent / "simulator-server")


def simulator_ledger(state_dir: Path | None = None) -> Path:
    """Where ``evalkit sim serve`` appends what it billed."""
    return (state_dir or load_settings().cache_dir.parent / "simulator-server") / "billing.jsonl"

verify_state, repair_state = state.verify_project_state, state.repair_project_state  # `evalkit cache …`
