"""The ``evalkit`` command. Thin: it parses arguments, calls :mod:`evalkit.api`, prints the outcome.

Heavy imports (SDK, scikit-learn, datasets) happen inside commands so ``evalkit --help`` stays fast.
Every command (and the ``evalkit`` group itself) takes the logging options ``-v``/``-q``/``--log-file``/
``--log-format``, before or after the command's name; exit codes are listed in :mod:`evalkit.errors`.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import click

from evalkit._version import __version__
from evalkit.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_INVALID_RUN,
    EXIT_REGRESSION,
    BatchPendingError,
    EvalkitError,
    UsageError,
)
from evalkit.logs import configure, console, shutdown

TASK = click.argument("task_file", type=click.Path(dir_okay=False, path_type=Path), metavar="TASK.yaml")
_LOGGING = "evalkit.logging"  # click's root-context meta key for the logging options seen so far
log = logging.getLogger(__name__)


def _fail(error: EvalkitError) -> None:
    click.secho(f"error: {error.message}", fg="red", err=True)
    if error.hint:
        click.echo(f"  hint: {error.hint}", err=True)
    sys.exit(error.exit_code)


def _log_state(ctx: click.Context) -> dict[str, Any]:
    return ctx.find_root().meta.setdefault(
        _LOGGING, {"verbose": 0, "quiet": False, "log_file": None, "log_format": None, "active": False})


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Logging options may come before the command (``evalkit -v run``) or after it (``run -v``): -v
    counts add up, -q sticks, the last --log-file / --log-format wins."""
    state = _log_state(ctx)
    if param.name == "verbose":
        state["verbose"] += value
    elif param.name == "quiet":
        state["quiet"] = state["quiet"] or value
    elif value is not None:
        state[str(param.name)] = value


def _logging_options() -> list[click.Parameter]:
    return [
        click.Option(["-v", "--verbose"], count=True, expose_value=False, callback=_remember,
                     help="More log lines on stderr: -v info, -vv debug (request ids, batch ids, cache "
                          "decisions), -vvv also the SDK's and HTTP client's own debug lines."),
        click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, callback=_remember,
                     help="Only errors and the result: no progress bar, notes or warnings on stderr."),
        click.Option(["--log-file"], type=click.Path(dir_okay=False, path_type=Path), default=None,
                     expose_value=False, callback=_remember, metavar="PATH",
                     help="Also append the log to PATH: info and up, debug with -vv. API keys and "
                          "credentials are redacted."),
        click.Option(["--log-format"], type=click.Choice(["text", "json"]), default=None, expose_value=False,
                     callback=_remember,
                     help="text (default) or json: one JSON object per line (ts, level, logger, message, "
                          "request_id, batch_id, …), on stderr and in --log-file."),
    ]


@contextmanager
def _logging(ctx: click.Context) -> Iterator[None]:
    """Logging for one command, from the options given anywhere on the command line."""
    state = _log_state(ctx)
    if state["active"]:
        yield
        return
    try:
        configure(verbosity=state["verbose"], quiet=state["quiet"], log_file=state["log_file"],
                  log_format=state["log_format"] or "text")
    except OSError as exc:
        raise UsageError(f"cannot write the log file {state['log_file']}: {exc.strerror}",
                         hint="give --log-file a path in a folder you can write to") from None
    state["active"] = True
    log.debug("evalkit %s: %s", __version__, ctx.command_path)
    try:
        yield
    except EvalkitError as error:  # shown by _fail; logged for the log file
        log.error("%s (exit %d)", error.message, error.exit_code, extra={"echoed": True})
        raise
    except SystemExit as done:
        log.info("exit %s", done.code)
        raise
    except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, KeyboardInterrupt,
            BrokenPipeError):
        raise
    except Exception:
        log.exception("internal error (exit %d)", EXIT_INTERNAL, extra={"echoed": True})
        raise
    finally:
        state["active"] = False
        shutdown()


class _Command(click.Command):
    """A command with the logging options, and logging set up while it runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_logging_options())

    def invoke(self, ctx: click.Context) -> Any:
        with _logging(ctx):
            return super().invoke(ctx)


class _Group(click.Group):
    """Turns every EvalkitError into a message and its exit code (no traceback), a bug into a traceback
    and exit 70; its commands and sub-groups get the logging options."""

    command_class = _Command
    group_class = type  # sub-groups are _Groups too

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_logging_options())

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EvalkitError as error:
            _fail(error)
        except KeyboardInterrupt:
            click.secho("interrupted: every answer received so far is in the response cache; "
                        "run the same command again to continue.", fg="yellow", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:  # `evalkit … | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except Exception:
            traceback.print_exc()
            click.secho(f"internal error: this is a bug in evalkit {__version__}; please report it with the "
                        f"traceback above (exit {EXIT_INTERNAL})", fg="red", err=True)
            sys.exit(EXIT_INTERNAL)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="evalkit")
def main() -> None:
    """Can this task move from the big model to the small one?

    evalkit runs a sample of your task through a cheap candidate model (e.g. Claude Haiku) and a
    reference model (e.g. Claude Sonnet), scores the candidate, decides GO / NO-GO / INCONCLUSIVE at a
    quality margin with sound statistics, and writes an HTML report with the evidence and the cost.

    \b
    Start here:
      evalkit validate tasks/triage.yaml     check the task file, dataset and prompts (no requests)
      evalkit lint tasks/triage.yaml         find what would stop prompt caching from paying
      evalkit run tasks/triage.yaml          evaluate; offline on the simulator without ANTHROPIC_API_KEY

    Every answer is kept in a response cache, so re-running costs nothing. Logging options (-v, -q,
    --log-file, --log-format) go before or after the command's name.
    """


@main.command()
@TASK
@click.option("--offline/--online", default=None,
              help="--offline: use the built-in simulator. --online: use the Anthropic API (needs "
                   "ANTHROPIC_API_KEY). Default: online when ANTHROPIC_API_KEY is set, else offline.")
@click.option("--mode", type=click.Choice(["batch", "realtime"]), default="batch", show_default=True,
              help="batch: Message Batches API, 50% cheaper, minutes to hours. "
                   "realtime: immediate, full price.")
@click.option("--max-wait", "max_wait", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Batch mode: stop waiting after this long; re-run the same command to resume (nothing is "
                   "resubmitted). Default: wait until done.")
@click.option("--detach", is_flag=True,
              help="Batch mode: submit the batches and return (after a prompt-cache warm-up batch, if any); "
                   "`evalkit status` shows how far they are, the same `evalkit run` command collects them.")
@click.option("--fallback", type=click.Choice(["none", "realtime"]), default="none", show_default=True,
              help="Batch mode: what to do with items still errored/expired after every resubmission.")
@click.option("--max-cost", type=click.FloatRange(min=0), default=None, metavar="USD",
              help="Budget guard: refuse to start when the estimate is over USD, and stop real-time runs "
                   "cleanly (resumably) when the spend reaches it. Default: the task's max_cost_usd.")
@click.option("--gate", "gate_baseline", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="BASELINE.json", help="Also compare with a baseline and exit like `evalkit gate`.")
@click.option("--sequential", is_flag=True,
              help="Look at the data every decision.sequential_every samples (default 100) and stop as soon "
                   "as the decision is clear (group-sequential O'Brien–Fleming test; error rates stay at "
                   "alpha).")
@click.option("--sample-size", "-n", type=int, default=None,
              help="Samples to evaluate (default: the task's sample.size, usually 300).")
@click.option("--cache", "cache_mode", type=click.Choice(["use", "read-only", "refresh", "off"]),
              default="use", show_default=True,
              help="use: read and write the response cache. read-only: never call the API (fails on a miss). "
                   "refresh: call again and overwrite. off: neither read nor write.")
@click.option("--concurrency", "-j", type=click.IntRange(1, 256), default=None,
              help="Parallel requests (default: evalkit.toml's concurrency).")
@click.option("--run-id", default=None, help="Name of the report folder (default: timestamp + hash).")
@click.option("--reports-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where report folders go (default: evalkit.toml's reports_dir).")
def run(task_file: Path, offline: bool | None, mode: Literal["batch", "realtime"], max_wait: float | None,
        detach: bool, fallback: Literal["none", "realtime"], max_cost: float | None,
        gate_baseline: Path | None, sequential: bool, sample_size: int | None,
        cache_mode: Literal["use", "read-only", "refresh", "off"], concurrency: int | None,
        run_id: str | None, reports_dir: Path | None) -> None:
    """Evaluate TASK.yaml and write reports/<task>/<run-id>/ (report.html, summary.json, results.jsonl).

    \b
    Examples:
      evalkit run tasks/triage.yaml
      evalkit run tasks/triage.yaml -n 100 --offline --mode realtime
      evalkit run tasks/triage.yaml --max-wait 600         # come back later; it resumes the batch
      evalkit run tasks/triage.yaml --detach               # submit, check `evalkit status`, run again
      evalkit run tasks/triage.yaml --cache read-only     # prove it costs nothing
    """
    from evalkit import api  # noqa: PLC0415

    options = api.RunOptions(offline=offline, mode=mode, max_wait_s=max_wait, fallback=fallback,
                             sequential=sequential, max_cost=max_cost,
                             sample_size=sample_size, cache_mode=cache_mode,
                             concurrency=concurrency, run_id=run_id, reports_dir=reports_dir,
                             detach=detach).validate()
    if gate_baseline is not None and not gate_baseline.exists():
        raise UsageError(f"baseline {gate_baseline} does not exist",
                         hint="create it with `evalkit baseline save TASK.yaml --out <path>` and commit it")
    try:
        result = api.run_task(task_file, options, progress=_progress())
    except BatchPendingError as pending:
        if not detach:
            raise
        batches = ", ".join(pending.batch_ids) or "(create pending)"
        click.echo(f"submitted: batch(es) {batches} for {task_file}")
        click.echo("  see how far they are: evalkit status")
        click.echo("  collect the answers and decide: the same command without --detach (nothing is "
                   "resubmitted)")
        return
    _print_result(result.record, result.folder, result.cache_dir)
    if result.failure is not None:
        raise result.failure  # exit 4, documented in docs/ci.md
    if gate_baseline is not None:
        _finish_gate(api.check_gate(result, gate_baseline))
    if result.record.decision.verdict == "INVALID-RUN":
        sys.exit(EXIT_INVALID_RUN)


def _progress() -> Any:
    """A progress bar on stderr sharing the log's console; with -q, notes go to the log file only."""
    from evalkit.progress import LogProgress, RichProgress  # noqa: PLC0415 - rich only when needed

    return LogProgress() if _log_state(click.get_current_context())["quiet"] else RichProgress(console())


def _print_result(record: Any, folder: Path, cache_dir: Path | None = None) -> None:
    decision = record.decision
    colour = {"GO": "green", "NO-GO": "red", "INVALID-RUN": "red"}.get(decision.verdict, "yellow")
    if record.simulated:
        click.secho("SIMULATED — answers came from evalkit's offline simulator, not from Claude.",
                    fg="yellow", bold=True)
    models = record.provenance.models
    if record.selection is not None:
        count = len(record.selection.configurations)
        click.echo(f"{record.task_name}: which of {count} candidate configurations can replace "
                   f"{models.reference}?")
        _print_selection(record.selection, folder)
        click.echo(f"  primary configuration ({record.selection.configurations[0].name}):", nl=False)
    else:
        click.echo(f"{record.task_name}: can {models.candidate} replace {models.reference}?")
    click.secho(f"  {decision.verdict}", fg=colour, bold=True, nl=False)
    click.echo(f" — {decision.reason}")
    for problem in record.validity.problems:
        click.secho(f"  invalid: {problem.message}", fg="red")
        click.echo(f"    fix: {problem.fix}")
    if record.validity.candidate_invalid:
        reasons = ", ".join(f"{code} {count}" for code, count in record.validity.candidate_invalid.items())
        click.echo(f"  candidate answers that count as wrong (invalid): {reasons}")
    if record.routing.advice:
        click.echo(f"  routing: {record.routing.advice}")
    sequential = record.sequential
    if sequential:
        click.echo(f"  sequential: stopped at n={sequential.stopped_at} of {sequential.n_max} "
                   f"(saved {sequential.samples_saved} samples, about ${sequential.cost_saved_usd:.4f})")
    if record.reference_noise:
        click.echo(f"  reference noise: {record.reference_noise.note}")
    weak = [f"{column}={name}" for column, groups in record.group_decisions.items()
            for name, group in groups.items() if group.verdict == "NO-GO"]  # Holm-adjusted
    if weak and decision.verdict != "NO-GO":
        click.secho(f"  NO-GO within: {', '.join(weak)}", fg="red")
    execution = record.execution
    shared = (f" ({execution.shared_with_other_runs} fetched by another run sharing the cache)"
              if execution.shared_with_other_runs else "")
    click.echo(f"  requests sent: {execution.requests_sent}, answered from cache: "
               f"{execution.cache_hits}{shared}, failed: {execution.errors}")
    cost = record.cost_usd
    saved = f", batch discount saved ${cost.batch_savings:.4f}" if cost.batch_savings > 0 else ""
    bound = f", at most ${cost.this_run_upper_bound:.4f}" if cost.this_run_upper_bound > cost.this_run else ""
    click.echo(f"  cost of these answers: ${cost.answers:.4f} "
               f"(paid this run: ${cost.this_run:.4f}{bound}{saved})")
    if execution.possibly_billed_twice:
        click.secho(f"  possibly billed twice: {execution.possibly_billed_twice} request(s) sent again after "
                    f"an attempt that may have been billed ({execution.timeouts} timed out); the Messages "
                    "API has no idempotency key. Raise request_timeout_s if answers are slow.", fg="yellow")
    if record.batch.canceled_duplicates:
        click.echo(f"  cancelled duplicate batch(es): {', '.join(record.batch.canceled_duplicates)}")
    if record.batch.answer_batch_ids:
        click.echo(f"  batches: {', '.join(record.batch.answer_batch_ids)}")
    click.echo(f"  report: {folder / 'report.html'}")
    if cache_dir is not None:
        click.echo(f"  paid answers kept in: {cache_dir} (re-runs read them from there)")


def _print_selection(selection: Any, folder: Path) -> None:
    """The candidate configurations side by side, and the recommendation."""
    method = "Holm" if selection.method == "holm" else "fixed sequence"
    click.echo(f"  {method} over {len(selection.configurations)} configurations: family-wise error of a GO "
               f"≤ {100 * selection.alpha:.0f}%")
    click.echo(f"    {'configuration':<22}{'alone':<14}{'quality':>8}  {'loss [90% interval]':<22}"
               f"{'adj. p':>8}  {'family':<7}{'$ / 1k req':>11}")
    for item in selection.configurations:
        quality = f"{100 * item.quality:.1f}%" if item.quality is not None else "—"
        loss = (f"{100 * item.loss:+.1f} [{100 * item.loss_interval[0]:.1f}, "
                f"{100 * item.loss_interval[1]:.1f}]"
                if item.loss is not None and item.loss_interval is not None else "—")
        click.echo(f"    {item.name:<22}{item.verdict:<14}{quality:>8}  {loss:<22}{item.adjusted_p:>8.3g}  "
                   f"{'GO' if item.go else '—':<7}{item.cost_per_1k_usd:>11.4f}")
    colour = "green" if selection.recommended else "yellow"
    click.secho(f"  recommended: {selection.recommended or 'none'}", fg=colour, bold=True, nl=False)
    click.echo(f" — {selection.reason}")
    for gap in selection.prompt_gaps:
        click.echo(f"  prompt variant {gap.variant} vs {gap.base}: {gap.note}")
    click.echo(f"  each configuration's own report: {folder / 'configs'}/<name>/report.html")


@main.command()
@TASK
@click.option("--sample-size", "-n", type=int, default=None, help="Check this many samples.")
@click.option("--offline/--online", default=None,
              help="Check for a run on the simulator (--offline) or the API; default as for run: offline "
                   "unless "
                   "ANTHROPIC_API_KEY is set.")
def validate(task_file: Path, sample_size: int | None, offline: bool | None) -> None:
    """Check TASK.yaml, its dataset, prompts and output schema without calling any model.

    Also checks what would make the run INVALID-RUN before anything is paid for: on the simulator, a
    label set no simulator corpus covers, or evaluated rows the simulator trained on. Exit codes: 0 ok,
    2 the task is invalid, 7 a run would be INVALID-RUN.
    """
    from evalkit import api  # noqa: PLC0415

    validation = api.validate_task(task_file, sample_size=sample_size, offline=offline)
    prepared = validation.prepared
    task = prepared.task
    if validation.problems:
        click.secho(f"{task_file}: a run on the simulator would be INVALID-RUN:", fg="red", bold=True)
        for problem in validation.problems:
            click.secho(f"  {problem.message}", fg="red")
            click.echo(f"    fix: {problem.fix}")
    else:
        click.echo(f"{task_file}: OK")
    answer = (f"{len(task.output.label_names)} labels" if task.output.kind == "classification"
              else f"{task.output.kind} answers")
    click.echo(f"  task {task.name}: {task.models.candidate.model} vs {task.models.reference.model}, "
               f"{answer}, margin {100 * task.decision.margin:g} points")
    for role in ("candidate", "reference"):
        setup = task.models.role(role)
        click.echo(f"  {role} {setup.model}: effort {setup.effort or 'model default'}, thinking "
                   f"{setup.thinking}, max_tokens {setup.max_tokens}")
    click.echo(f"  dataset {prepared.samples.dataset_source}: {prepared.samples.rows_available} rows, "
               f"sample of {len(prepared.samples.samples)} (seed {task.sample.seed})")
    click.echo(f"  {len(prepared.requests)} requests would be sent; system prompt "
               f"{len(prepared.renderer.system)} characters")
    if task.input.used:
        chosen = prepared.samples.samples
        files = [a for sample in chosen for a in sample.attachments]
        turns = max((len(sample.messages or ()) for sample in chosen), default=0)
        click.echo(f"  the sample sends {sum(a.kind == 'document' for a in files)} PDFs "
                   f"({sum(a.pages for a in files)} pages), {sum(a.kind == 'image' for a in files)} images"
                   + (f", conversations of up to {turns} turns" if task.input.messages else ""))
    for note in prepared.samples.notes:
        click.echo(f"  note: {note}")
    if validation.problems:
        sys.exit(EXIT_INVALID_RUN)


@main.command()
@TASK
@click.option("--target-loss", type=click.FloatRange(0.001, 0.5), default=0.01, show_default=True,
              help="Quality objective: allowed loss vs always-reference, as a fraction (0.01 = 1 point).")
@click.option("--delta", type=click.FloatRange(0.001, 0.5), default=0.10, show_default=True,
              help="The guarantee holds with probability at least 1 − delta.")
@click.option("--budget", "budget_per_1k", type=click.FloatRange(min=0), default=None, metavar="USD",
              help="Instead: the most accurate threshold costing at most USD per 1,000 requests.")
@click.option("--escalation-rate", type=click.FloatRange(0, 1), default=None,
              help="Instead: the smallest threshold escalating at least this share of requests.")
@click.option("--ignore-escalate-flag", is_flag=True, help="Route on confidence alone.")
@click.option("--mode", type=click.Choice(["batch", "realtime"]), default="batch", show_default=True,
              help="The mode the answers were produced in (it shapes the cached requests).")
@click.option("--offline/--online", default=None, help="Which endpoint's cached answers to use (as for run).")
@click.option("--sample-size", "-n", type=int, default=None, help="As given to the run being tuned.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write routing.json (default: reports/<task>/routing.json).")
@click.option("--configuration", default=None, metavar="NAME",
              help="With models.candidates: the configuration to route (default: the primary, first one).")
def tune(task_file: Path, target_loss: float, delta: float, budget_per_1k: float | None,
         escalation_rate: float | None, ignore_escalate_flag: bool, mode: Literal["batch", "realtime"],
         offline: bool | None, sample_size: int | None, out: Path | None, configuration: str | None) -> None:
    """Choose the router's confidence threshold from cached answers: zero API requests.

    Run `evalkit run TASK.yaml` first; tune re-reads its answers from the response cache (and fails,
    sending nothing, if any is missing), prints the cost–quality table and writes routing.json with the
    threshold, its expected escalation rate, quality and cost, and the evidence behind them.

    \b
    Examples:
      evalkit tune tasks/triage.yaml                        # ≤ 1 point loss, 90% guarantee
      evalkit tune tasks/triage.yaml --target-loss 0.03
      evalkit tune tasks/triage.yaml --budget 0.50          # USD per 1,000 requests
    """
    from evalkit import api  # noqa: PLC0415

    if budget_per_1k is not None and escalation_rate is not None:
        raise UsageError("give at most one of --budget and --escalation-rate")
    objective: Literal["quality", "budget", "escalation"] = (
        "budget" if budget_per_1k is not None else "escalation" if escalation_rate is not None else "quality")
    options = api.RoutingOptions(objective=objective, target_loss=target_loss, delta=delta,
                             budget_per_1k=budget_per_1k, escalation_rate=escalation_rate,
                             honour_escalate_flag=not ignore_escalate_flag)
    result = api.tune_task(task_file, options, offline=offline, mode=mode, sample_size=sample_size,
                           out=out, configuration=configuration)
    _print_tune(result.analysis, result.requests_sent)
    click.echo(f"routing.json: {result.path}")


def _print_tune(analysis: Any, requests_sent: int) -> None:
    click.echo(f"{requests_sent} API requests: every answer came from the response cache")
    costs = analysis.costs
    click.echo(f"samples {analysis.n} · always-reference accuracy "
               f"{100 * analysis.always_reference_accuracy:.1f}% "
               f"(${costs.always_reference_per_1k:.4f}/1k) · always-candidate "
               f"{100 * analysis.always_candidate_accuracy:.1f}% (${costs.always_candidate_per_1k:.4f}/1k)")
    click.echo(f"{'t':>5} {'escalate':>9} {'routed acc':>11} {'loss':>7} {'$/1k req':>10}")
    marks = {analysis.chosen.t if analysis.chosen else None: "  ← chosen",
             analysis.seed_default.t: "  ← seed default",
             analysis.naive.threshold: "  ← naive in-sample"}
    shown = [row for row in analysis.sweep if round(row.t * 100) % 5 == 0 or row.t in marks]
    for row in shown:
        click.echo(f"{row.t:>5.2f} {100 * row.escalation_rate:>8.1f}% {100 * row.routed_accuracy:>10.1f}% "
                   f"{100 * row.quality_loss:>6.1f} {row.cost_per_1k:>10.4f}{marks.get(row.t, '')}")
    click.echo(f"objective: {analysis.objective}")
    click.echo(f"guarantee: {analysis.guarantee}")
    if analysis.advice:
        click.secho(f"routing: {analysis.advice}", fg="green" if analysis.pays else "yellow")
    fit = analysis.cross_fitted
    click.echo(f"held-out (5-fold cross-fitted): escalate {100 * fit.escalation_rate:.1f}%, routed accuracy "
               f"{100 * fit.routed_accuracy:.1f}%, loss {100 * fit.quality_loss:.1f} points, "
               f"${fit.cost_per_1k:.4f}/1k; fold thresholds {fit.fold_thresholds}")
    naive = analysis.naive
    if naive.in_sample:
        click.echo(f"naive in-sample pick t={naive.threshold:.2f} claims loss "
                   f"{100 * naive.in_sample.quality_loss:.1f} points; held out it is "
                   f"{100 * naive.cross_fitted.quality_loss:.1f} (optimism "
                   f"{100 * naive.optimism_quality_loss:.1f} points)")
    calibration = analysis.calibration
    if calibration:
        click.echo(f"confidence: mean {calibration.mean_confidence:.2f} vs accuracy "
                   f"{calibration.accuracy:.2f}, ECE {calibration.ece_uniform10:.3f}, Brier "
                   f"{calibration.brier:.3f}, AUROC "
                   f"{calibration.auroc:.3f}")


@main.command()
@TASK
@click.option("--expected-gap", type=float, required=True,
              help="Quality loss you expect, as a fraction (0.02 = 2 points): 1 − agreement without gold "
                   "labels, reference accuracy − candidate accuracy with them.")
@click.option("--discordance", type=float, default=0.02, show_default=True,
              help="Gold mode: expected share of samples only the candidate gets right.")
@click.option("--power", type=float, default=0.8, show_default=True, help="Chance the run decides.")
@click.option("--reference-accuracy", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Needed when the task's margin is relative (margin_type: relative): the reference "
                   "accuracy you expect, which sets the margin in points.")
@click.option("--sequential", is_flag=True,
              help="Plan N_max for `run --sequential` (looks every decision.sequential_every samples).")
def plan(task_file: Path, expected_gap: float, discordance: float, power: float,
         reference_accuracy: float | None, sequential: bool) -> None:
    """How many samples TASK.yaml needs to reach a decision at its margin.

    Exact power of the same test the run uses (exact binomial without gold labels, Tango with them), at
    the margin the run applies (relative margins included); with --sequential, the larger N_max the
    O'Brien–Fleming looks need for the same power. Says so when the dataset has too few rows.
    """
    from evalkit import api  # noqa: PLC0415

    result = api.plan_task(task_file, expected_gap=expected_gap, discordance=discordance, power=power,
                           reference_accuracy=reference_accuracy, sequential=sequential)
    task = result.task
    margin = 100 * result.margin
    if result.n is None:
        click.echo(f"no sample size decides it: {result.why or 'the gap is too close to the margin'}")
        sys.exit(EXIT_REGRESSION)
    design = (f"a sequential design (N_max, {result.inflation:.3f}× the fixed sample)" if result.inflation
              else "the fixed design")
    click.echo(f"{task.name}: with an expected loss of {100 * expected_gap:g} points against a "
               f"{margin:g}-point "
               f"margin ({'gold labels' if result.mode == 'gold' else 'agreement with the reference'}), "
               f"{result.n} samples give a {100 * power:g}% chance of a {result.side} in {design}.")
    if not result.reachable:
        click.secho(f"  the dataset has {result.rows_available} rows: this decision cannot be reached with "
                    "it "
                    ""
                    ""
                    "(widen the margin, expect a clearer gap, or add rows)", fg="yellow")
    elif result.n > 500:
        click.echo("  that is more than the 200–500 evalkit is designed for: the gap is close to the margin; "
                   "consider --sequential, or accept INCONCLUSIVE as the likely outcome")


@main.command()
@TASK
@click.option("--mode", type=click.Choice(["batch", "realtime"]), default="batch", show_default=True,
              help="Which run mode to judge the caching plan for (TTL differs).")
def lint(task_file: Path, mode: str) -> None:
    """Find what would stop prompt caching from paying in TASK.yaml.

    Reports per-sample or volatile values ({{ now }}, dates, ids, random) inside the cached system prompt,
    static text placed after per-sample content, and prefixes too short to cache, each with the task
    file's line and a fix. Exit code 0 when clean, 1 when there are warnings or errors.
    """
    from evalkit import api  # noqa: PLC0415

    findings = api.lint_task(task_file, mode=mode)
    for finding in findings:
        colour = {"error": "red", "warning": "yellow"}.get(finding.severity)
        click.secho(finding.render(), fg=colour)
    serious = [f for f in findings if f.severity in ("error", "warning")]
    if not serious:
        click.echo(f"{task_file}: no cache-busting problems found")
    sys.exit(EXIT_REGRESSION if serious else 0)


@main.command()
@click.argument("path", required=False, type=click.Path(path_type=Path), metavar="[TASK.yaml|DIR]")
@click.option("--no-api", "no_api", is_flag=True,
              help="Only what the batch ledger knows (task, models, requests, age); do not ask the API.")
@click.option("--offline/--online", default=None,
              help="Ask the built-in simulator (--offline) or the Anthropic API (--online) about progress. "
                   "Default: the API when ANTHROPIC_API_KEY is set, else the simulator.")
def status(path: Path | None, no_api: bool, offline: bool | None) -> None:
    """The batches in flight in the project holding TASK.yaml|DIR (default: the working folder): task,
    batch, models, requests done, age and ETA, from the batch ledger and the API.

    \b
    Examples:
      evalkit run tasks/triage.yaml --detach && evalkit status
      evalkit status --no-api              # the ledger only, no network
    """
    from evalkit import api  # noqa: PLC0415

    flights = api.batch_status(path, ask_api=not no_api, offline=offline)
    if not flights:
        click.echo("no batches in flight")
        return
    click.echo(f"{'task':<18} {'batch':<34} {'models':<34} {'done':>11} {'age':>7} {'eta':>7}  status")
    for item in flights:
        models = ", ".join(f"{model} ×{n}" for model, n in item.models.items()) or "?"
        kind = " (warm-up)" if item.warmup else ""
        eta = "?" if item.eta_s is None else _duration(item.eta_s)
        click.echo(f"{item.task or '?':<18} {item.batch_id or '(creating)':<34} {models:<34} "
                   f"{item.progress:>11} {_duration(item.age_s):>7} {eta:>7}  "
                   f"{item.status or item.state}{kind}")
        if item.note:
            click.echo(f"  {item.note}")


def _duration(seconds: float) -> str:
    from evalkit.progress import duration  # noqa: PLC0415

    return duration(seconds)


@main.group()
def cache() -> None:
    """evalkit's own state: the response cache and the batch ledger."""


STATE_PATH = click.argument("path", required=False, type=click.Path(path_type=Path),
                            metavar="[TASK.yaml|DIR]")


@cache.command("verify")
@STATE_PATH
def cache_verify(path: Path | None) -> None:
    """Read every cached answer (checking its checksum) and every batch-ledger record of the project
    holding TASK.yaml|DIR (default: the working folder); list what is damaged. Exit code 0 when
    everything is intact, 2 when something is damaged (see `evalkit cache repair`)."""
    from evalkit import api  # noqa: PLC0415

    check = api.state.verify_project_state(path)
    report = check.cache
    if report.unreadable:
        click.secho(f"{report.database}: cannot be read: {report.unreadable}", fg="red")
    else:
        click.echo(f"{report.database}: {report.entries} entries ({report.checksummed} checksummed, "
                   f"{report.legacy} from before checksums), {len(report.damaged)} damaged")
    for key in report.damaged:
        click.secho(f"  damaged entry {key}", fg="red")
    click.echo(f"{check.ledger_dir}: {len(check.ledger)} damaged batch-ledger record(s)")
    for _file, problem in check.ledger:
        click.secho(f"  {problem}", fg="red")
    if check.ok:
        click.secho("everything is intact", fg="green")
        return
    click.echo("fix: evalkit cache repair" + (f" {path}" if path else ""))
    sys.exit(2)


@cache.command("repair")
@STATE_PATH
def cache_repair(path: Path | None) -> None:
    """Repair what `evalkit cache verify` finds in the project holding TASK.yaml|DIR: restore ledger
    records from the ledger's journal, rebuild a damaged cache.db from what can be read, drop damaged
    answers and read batch answers back from their batches. Says what a re-run would pay for again;
    never deletes a ledger record it cannot restore."""
    from evalkit import api  # noqa: PLC0415

    done = api.state.repair_project_state(path)
    for line in done:
        click.echo(line)
    if not done:
        click.secho("nothing to repair: everything is intact", fg="green")


@main.group()
def store() -> None:
    """The shared store (store = "postgresql://…" in evalkit.toml or EVALKIT_STORE; docs/store.md)."""


@store.command("migrate")
@STATE_PATH
def store_migrate(path: Path | None) -> None:
    """Create or upgrade the schema of the shared store the project holding TASK.yaml|DIR uses
    (idempotent; runs also do it on first use)."""
    from evalkit import api  # noqa: PLC0415

    where, before, now = api.state.migrate_store(path)
    if before == now:
        click.echo(f"{where}: schema version {now}, nothing to do")
    else:
        click.echo(f"{where}: schema {'created' if before is None else f'upgraded from {before}'} at "
                   f"version {now}")


@store.command("verify")
@STATE_PATH
def store_verify(path: Path | None) -> None:
    """Connect to the shared store of the project holding TASK.yaml|DIR, check its schema, every stored
    answer's checksum and every batch ledger record. Exit code 0 when everything is intact, 2 otherwise."""
    from evalkit import api  # noqa: PLC0415

    check, answers = api.state.verify_store(path)
    click.echo(f"{check.store}: schema version {check.schema_version}")
    for table, count in check.counts.items():
        click.echo(f"  {table}: {count} rows")
    if check.expired_claims:
        click.echo(f"  {check.expired_claims} expired claim(s) (runners that stopped; taken over on use)")
    if answers is not None:
        click.echo(f"  answers: {answers.entries} ({answers.checksummed} checksummed), "
                   f"{len(answers.damaged)} damaged")
    for problem in check.problems:
        click.secho(f"  {problem}", fg="red")
    if not check.ok:
        sys.exit(2)
    click.secho("everything is intact", fg="green")


def _money(value: float) -> str:
    return f"${value:.4f}"


@main.command(context_settings={"ignore_unknown_options": False})
@click.argument("words", nargs=-1, metavar="[TASK | show RUN]")
@click.option("--task", "task_name", default=None, help="The task, when a run id is in several tasks.")
def runs(words: tuple[str, ...], task_name: str | None) -> None:
    """List finished runs (of TASK), oldest first, or show one: `evalkit runs [TASK | show RUN]`.

    Runs come from reports/ (embedded) or from the shared store when one is configured. RUN is a run id,
    TASK/RUN_ID or a run folder.

    \b
    Examples:
      evalkit runs
      evalkit runs triage
      evalkit runs show triage/20261201-101500-ab12cd
    """
    from evalkit import api  # noqa: PLC0415

    if words and words[0] == "show":
        if len(words) != 2:
            raise UsageError("`evalkit runs show` takes one RUN", hint="evalkit runs show TASK/RUN_ID")
        _show_run(api.history.load_run(words[1], task=task_name))
        return
    if len(words) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(words[1:])}",
                         hint="evalkit runs [TASK], or evalkit runs show RUN")
    entries = api.history.list_runs(words[0] if words else task_name)
    if not entries:
        click.echo("no finished runs" + (f" of {words[0]}" if words else ""))
        return
    click.echo(f"{'finished':<20} {'task/run':<40} {'verdict':<12} {'loss [interval]':<22} {'cost':>9} "
               f"{'models':<40} dataset/sample/prompt")
    for e in entries:
        interval = (f"[{100 * e.loss_interval[0]:.1f}, {100 * e.loss_interval[1]:.1f}]"
                    if e.loss_interval else "")
        loss = f"{100 * e.loss:.1f}% {interval}" if e.loss is not None else "—"
        click.echo(f"{e.finished_at[:19]:<20} {e.task + '/' + e.run_id:<40} "
                   f"{e.verdict + ('*' if e.simulated else ''):<12} {loss:<22} {_money(e.cost_usd):>9} "
                   f"{e.candidate + ' vs ' + e.reference:<40} "
                   f"{e.dataset_hash[:8]}/{e.sample_hash[:8]}/{e.system_hash[:8]}")
    if any(e.simulated for e in entries):
        click.echo("* simulated answers (evalkit's offline simulator)")


def _show_run(run: Any) -> None:
    record = run.record
    p, d = record.provenance, record.decision
    interval = f" [{100 * d.loss_interval[0]:.1f}, {100 * d.loss_interval[1]:.1f}]" if d.loss_interval else ""
    lines = [f"run {p.task.name}/{p.run_id} ({run.where})" + ("  SIMULATED" if p.simulated else ""),
             f"  decision: {d.verdict} — {d.reason}",
             f"  quality loss: {'—' if d.loss is None else f'{100 * d.loss:.1f}%'}{interval} "
             f"(margin {100 * d.margin:.1f}%, n={d.n})",
             f"  models: {p.models.candidate} vs {p.models.reference} ({p.models.reference_source})",
             f"  mode: {p.mode}; finished {p.finished_at}; evalkit {p.evalkit_version}",
             f"  dataset {record.dataset.hash[:12]} (sample {record.dataset.sample_hash[:12]}, "
             f"{record.dataset.sample_size} samples); system prompt {p.prompt.system_hash[:12]}; "
             f"task file {p.task.spec_hash[:12]}",
             f"  cost: answers {_money(record.cost_usd.answers)}, paid by this run "
             f"{_money(record.cost_usd.this_run)} ({record.execution.requests_sent} requests sent, "
             f"{record.execution.cache_hits} from cache)"]
    click.echo("\n".join(lines))


@main.command("compare")
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="RUN_B")
@click.option("--task", "task_name", default=None, help="The task, when a run id is in several tasks.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the HTML page (default: reports/<task>/compare-<A>-vs-<B>.html).")
@click.option("--limit", type=click.IntRange(min=0), default=30, show_default=True,
              help="Changed samples to print (the HTML page has them all).")
def compare_command(run_a: str, run_b: str, task_name: str | None, html_path: Path | None,
                    limit: int) -> None:
    """Paired comparison of two runs, RUN_A (before) and RUN_B (after), over the same samples: what
    changed per sample and per label, the drift of the decision and of the cost. Each is a run id,
    TASK/RUN_ID or a run folder.

    \b
    Example:
      evalkit compare triage/before triage/after
    """
    from evalkit import api  # noqa: PLC0415

    comparison = api.history.compare_runs(run_a, run_b, task=task_name)
    click.echo("\n".join(api.history.comparison_text(comparison, limit=limit)))
    click.echo(f"html: {api.history.write_comparison(comparison, html_path)}")


def _finish_gate(gate: Any) -> None:
    """Print the gate's checks and exit with its code."""
    colours = {"pass": "green", "fail": "red", "inconclusive": "yellow", "skipped": None, "invalid": "red"}
    for check in gate.checks:
        click.secho(f"  gate {check.name}: {check.status} — {check.message}", fg=colours[check.status])
    code = gate.exit_code
    label = {0: "PASS", EXIT_REGRESSION: "FAIL (regression or NO-GO)", 3: "INCONCLUSIVE",
             EXIT_INVALID_RUN: "INVALID RUN (the evidence cannot support a verdict)"}.get(code, str(code))
    click.secho(f"gate: {label} (exit {code}); JUnit {gate.junit}, summary {gate.markdown}",
                fg="green" if code == 0 else "red" if code == 1 else "yellow", bold=True)
    sys.exit(code)


@main.command()
@TASK
@click.option("--baseline", "baseline_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              metavar="BASELINE.json", help="Made by `evalkit baseline save` and committed.")
@click.option("--tolerance", type=click.FloatRange(0, 0.5), default=0.02, show_default=True,
              help="Allowed quality drop vs the baseline (fraction); judged with the paired Tango test.")
@click.option("--cost-tolerance", type=click.FloatRange(min=0), default=0.10, show_default=True,
              help="Allowed relative rise in cost per request.")
@click.option("--inconclusive", type=click.Choice(["exit3", "pass", "fail"]), default="exit3",
              show_default=True,
              help="What an INCONCLUSIVE decision does to the build.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write JUnit XML (default: the run folder's junit.xml).")
@click.option("--deployment", type=click.Choice(["replacement", "routed"]), default=None,
              help="replacement: the candidate replaces the reference (NO-GO fails). routed: the deployment "
                   "routing.json describes; NO-GO is expected, the routed quality and escalation rate at the "
                   "shipped threshold are checked instead. Default: the task's gate.deployment, else "
                   "replacement.")
@click.option("--routing", "routing_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, metavar="ROUTING.json",
              help="Routed: the routing.json (from `evalkit tune`) with the shipped threshold. Default: the "
                   "threshold the baseline was saved with.")
@click.option("--escalation-tolerance", type=click.FloatRange(0, 1), default=None,
              help="Routed: allowed rise of the escalation rate over the baseline's (fraction). Default: "
                   "the task's gate.escalation_tolerance (0.05).")
@click.option("--mode", type=click.Choice(["batch", "realtime"]), default="batch", show_default=True,
              help="As for run: batch (Message Batches, 50% cheaper) or realtime (immediate, full price).")
@click.option("--max-wait", "max_wait", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Batch mode: stop waiting after this long (exit 5); a later run with the same cache or "
                   "store picks the batch up, nothing is resubmitted.")
@click.option("--fallback", type=click.Choice(["none", "realtime"]), default="none", show_default=True,
              help="Batch mode: what to do with items still errored/expired after every resubmission.")
@click.option("--offline/--online", default=None,
              help="As for run: --offline uses the simulator, --online the API; default: online when "
                   "ANTHROPIC_API_KEY is set.")
@click.option("--sample-size", "-n", type=int, default=None,
              help="Samples to evaluate (default: the task's sample.size; use the baseline's for a paired "
                   "comparison).")
@click.option("--max-cost", type=click.FloatRange(min=0), default=None, metavar="USD",
              help="Budget guard, as for run: refuse to start above USD, stop real-time runs when reached.")
def gate(task_file: Path, baseline_path: Path, tolerance: float, cost_tolerance: float,
         inconclusive: Literal["exit3", "pass", "fail"], junit: Path | None,
         deployment: Literal["replacement", "routed"] | None, routing_path: Path | None,
         escalation_tolerance: float | None, mode: Literal["batch", "realtime"], max_wait: float | None,
         fallback: Literal["none", "realtime"], offline: bool | None, sample_size: int | None,
         max_cost: float | None) -> None:
    """CI regression gate: run TASK.yaml and compare it with a committed baseline.

    Fails on a NO-GO, on a quality drop beyond --tolerance (paired test, not raw noise), on the
    baseline's routing threshold no longer meeting its target (drift), or on cost per request rising
    beyond --cost-tolerance. With --deployment routed (a task `tune` routes): on the routed quality
    dropping beyond --tolerance or the escalation rate rising beyond --escalation-tolerance at the
    shipped threshold instead of on a NO-GO. Writes JUnit XML and a Markdown summary (also to
    $GITHUB_STEP_SUMMARY).

    \b
    Exit codes: 0 pass · 1 regression or NO-GO · 2 usage/config error · 3 inconclusive
                (--inconclusive pass|fail to map it) · 4 API failure · 5 batch still running
                (re-run to resume) · 6 budget guard stopped the run · 7 INVALID-RUN ·
                8 credentials · 9 cache miss · 10 custom metric failed · 11 sim serve port in use
                (all: docs/ci.md)
    """
    from evalkit import api  # noqa: PLC0415

    options = api.RunOptions(offline=offline, mode=mode, sample_size=sample_size, max_cost=max_cost,
                             max_wait_s=max_wait, fallback=fallback).validate()
    gate_options = api.GateOptions(tolerance=tolerance, cost_tolerance=cost_tolerance,
                                   inconclusive=inconclusive, deployment=deployment,
                                   escalation_tolerance=escalation_tolerance, routing=routing_path)
    result = api.gate_task(task_file, baseline_path, gate=gate_options, options=options, junit=junit,
                           progress=_progress())
    _print_result(result.run.record, result.run.folder)
    if result.run.failure is not None:
        raise result.run.failure
    _finish_gate(result)


@main.group()
def baseline() -> None:
    """Baselines for the CI gate."""


@baseline.command("save")
@TASK
@click.option("--run", "run_id", default=None, help="Run id under reports/<task>/ (default: the latest).")
@click.option("--routing", "routing_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="routing.json to guard against drift (default: reports/<task>/routing.json if present).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write it (default: baselines/<task>.json in the project).")
def baseline_save(task_file: Path, run_id: str | None, routing_path: Path | None, out: Path | None) -> None:
    """Save a finished run of TASK.yaml as the baseline the gate compares against (commit the file)."""
    from evalkit import api  # noqa: PLC0415

    saved = api.save_baseline(task_file, run_id=run_id, routing_path=routing_path, out=out)
    baseline = saved.baseline
    routing = f", routing threshold {baseline.routing.threshold}" if baseline.routing else ""
    click.echo(f"baseline from run {baseline.run_id} ({baseline.decision}, {len(baseline.outcomes)} "
               f"samples{routing}) written to {saved.path}")


@main.command()
@TASK
@click.option("--mode", type=click.Choice(["batch", "realtime"]), default="batch", show_default=True,
              help="Price the run as batch (50% off every token category) or realtime requests.")
@click.option("--offline/--online", default=None,
              help="Estimate for the simulator (--offline) or the API (--online); default as for run. Only "
                   "answers missing from that endpoint's response cache are priced.")
@click.option("--sample-size", "-n", type=int, default=None,
              help="Samples the run would evaluate (default: the task's sample.size).")
def estimate(task_file: Path, mode: Literal["batch", "realtime"], offline: bool | None,
             sample_size: int | None) -> None:
    """Print what `evalkit run TASK.yaml` would cost, without sending any request."""
    from evalkit import api  # noqa: PLC0415

    result = api.estimate_task(task_file, mode=mode, offline=offline, sample_size=sample_size)
    click.echo(result.describe())
    for model, entry in result.by_model.items():
        click.echo(f"  {model}: {entry.requests} requests, ${entry.expected_usd:.4f} expected, "
                   f"${entry.upper_usd:.4f} at most")


@main.group()
def sim() -> None:
    """The offline simulator of the Anthropic API."""


def _share(name: str, what: str) -> Any:
    return click.option(name, type=click.FloatRange(0, 1), default=None, metavar="SHARE",
                        help=f"{what} (0–1; default: evalkit.toml).")


@sim.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on (0.0.0.0 for every interface).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port to listen on (a busy port exits with code 11).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the billing ledger and batches go (default: .evalkit/simulator-server under the "
                   "project).")
@click.option("--seed", type=int, default=None,
              help="Seed of the simulated models' draws (default: evalkit.toml's [simulator] seed).")
@click.option("--latency-ms", type=click.FloatRange(min=0), default=None, metavar="MS",
              help="Delay added to every Messages request (default: evalkit.toml).")
@_share("--rate-limit-rate", "Share of requests answered 429 rate_limit_error with retry-after")
@_share("--overloaded-rate", "Share of requests answered 529 overloaded_error")
@_share("--server-error-rate", "Share of requests answered 500 api_error")
@_share("--disconnect-rate", "Share of requests whose connection drops before any response")
@_share("--slow-rate", "Share of requests that take --slow-ms longer")
@click.option("--slow-ms", type=click.FloatRange(min=0), default=None, metavar="MS",
              help="Extra delay of a slow request (default: evalkit.toml, 2000).")
@click.option("--retry-after", "retry_after_s", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="retry-after sent with injected 429s (default: evalkit.toml, 0.05).")
@_share("--refusal-rate", "Share of answers that are refusals (stop_reason refusal, HTTP 200, billed)")
@click.option("--batch-delay", "batch_delay_s", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Seconds from batch creation until it has ended (default: evalkit.toml).")
@_share("--batch-errored", "Share of batch items that come back errored (api_error)")
@_share("--batch-expired", "Share of batch items that come back expired")
@_share("--batch-cache-hit-rate", "Share of batch items that read a readable cached prefix (best-effort; "
        "real batches: 30–98%)")
def sim_serve(host: str, port: int, state_dir: Path | None, seed: int | None, latency_ms: float | None,
              rate_limit_rate: float | None, overloaded_rate: float | None, server_error_rate: float | None,
              disconnect_rate: float | None, slow_rate: float | None, slow_ms: float | None,
              retry_after_s: float | None, refusal_rate: float | None, batch_delay_s: float | None,
              batch_errored: float | None, batch_expired: float | None,
              batch_cache_hit_rate: float | None) -> None:
    """Serve the simulator over HTTP. Point any client at it:

    \b
      export ANTHROPIC_BASE_URL=http://127.0.0.1:8765 ANTHROPIC_API_KEY=anything
      evalkit run tasks/triage.yaml --online

    Every flag overrides the same setting of evalkit.toml's [simulator] section, e.g. a faulty server:

    \b
      evalkit sim serve --rate-limit-rate 0.05 --overloaded-rate 0.02 --latency-ms 200 --seed 7

    Exit codes: 0 stopped · 2 bad settings · 11 the port is in use.
    """
    from evalkit import api  # noqa: PLC0415

    overrides = {
        "seed": seed, "latency_ms": latency_ms, "refusal_rate": refusal_rate, "batch_delay_s": batch_delay_s,
        "batch_errored_fraction": batch_errored, "batch_expired_fraction": batch_expired,
        "batch_cache_hit_rate": batch_cache_hit_rate, "faults.rate_limit": rate_limit_rate,
        "faults.overloaded": overloaded_rate, "faults.server_error": server_error_rate,
        "faults.disconnect": disconnect_rate, "faults.slow": slow_rate, "faults.slow_ms": slow_ms,
        "faults.retry_after_s": retry_after_s,
    }
    chosen: dict[str, object] = {key: value for key, value in overrides.items() if value is not None}
    click.echo(f"evalkit simulator on http://{host}:{port} (ledger: {api.simulator_ledger(state_dir)}); "
               "answers are SIMULATED" + (f"; overrides: {chosen}" if chosen else ""), err=True)
    api.serve_simulator(host=host, port=port, state_dir=state_dir, overrides=chosen)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path), metavar="RUN_DIR")
def report(run_dir: Path) -> None:
    """Re-render RUN_DIR/report.html from its summary.json and results.jsonl (no model, no network).

    \b
    Example:
      evalkit report reports/triage/20261201-101500-ab12cd
    """
    from evalkit import api  # noqa: PLC0415

    click.echo(f"report: {api.render_report(run_dir)}")


@main.command()
@click.argument("dataset", type=click.Path(exists=True, path_type=Path), metavar="DATASET")
@click.option("--name", default=None, help="Task name (default: from the dataset's file name).")
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Project folder: tasks/<name>.yaml (and evalkit.toml) go here.")
@click.option("--force", is_flag=True, help="Overwrite an existing task file of that name.")
def init(dataset: Path, name: str | None, folder: Path, force: bool) -> None:
    """Write a task for DATASET (a .jsonl/.csv/.tsv/.parquet/.arrow file or a save_to_disk folder).

    Infers the text, label and id columns and the labels, and a split column whose training rows the
    offline simulator then learns the domain from; writes a commented tasks/<name>.yaml and, when the
    folder has none, an evalkit.toml. Check and edit the task (describe the labels), then run it.

    \b
    Example:
      evalkit init datasets/tickets.csv && evalkit validate tasks/tickets.yaml
    """
    from evalkit import api  # noqa: PLC0415

    made = api.init_project(dataset, folder=folder, name=name, force=force)
    found = made.found
    click.echo(f"wrote {made.task_file}" + (f" and {made.settings_file}" if made.settings_file else ""))
    click.echo(f"  {found.rows} rows · text: {found.text_column} · label: {found.label_column} "
               f"({len(found.labels)} labels) · id: {found.id_column or 'derived from the text'}"
               + (f" · split: {found.split_column} ({', '.join(found.splits)})"
                  if found.split_column else ""))
    if not made.simulator_learns:
        click.secho("  offline, the simulator has no training rows for these labels (no train/test split "
                    "column): `evalkit run` will need ANTHROPIC_API_KEY, or add a split column", fg="yellow")
    click.echo("next:")
    click.echo(f"  evalkit validate {made.task_file}    # checks the task and what a run would need")
    click.echo(f"  evalkit run {made.task_file}         # offline on the simulator unless ANTHROPIC_API_KEY "
               "is set")


@main.command()
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path),
              default=Path("evalkit-demo"), show_default=True, help="Where the demo project is set up "
                                                                    "(files already there are kept).")
@click.option("--sample-size", "-n", type=int, default=None, help="Samples to evaluate (default 300).")
@click.option("--mode", type=click.Choice(["batch", "realtime"]), default="batch", show_default=True,
              help="batch: the Message Batches path, as in production. realtime: one request at a time.")
def demo(folder: Path, sample_size: int | None, mode: str) -> None:
    """Set up the demo project (a support-ticket triage task, its data, settings) and run it offline.

    Everything comes from the installed package: it works in any folder, with no API key. The answers
    are SIMULATED. The report lands in <dir>/reports/triage/<run-id>/, the paid answers in <dir>/.evalkit/.
    """
    from evalkit import api  # noqa: PLC0415

    options = api.RunOptions(sample_size=sample_size, mode=mode)  # type: ignore[arg-type]
    click.echo(f"demo project: {folder.resolve()}")
    result = api.run_demo(folder, options, progress=_progress())
    _print_result(result.record, result.folder, result.cache_dir)


RUN_FILES = ("summary.json", "results.jsonl", "report.html", "junit.xml", "summary.md", "gate.json")


@main.command("export")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path), metavar="RUN_DIR")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True,
              help="csv: a header and one line per sample (nested values as JSON text). jsonl: one flat JSON "
                   "object per sample.")
@click.option("--out", "-o", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path), default=None,
              metavar="PATH", help="Where to write it; '-' for stdout (default: RUN_DIR/samples.<format>).")
def export(run_dir: Path, fmt: Literal["csv", "jsonl"], out: Path | None) -> None:
    """Export RUN_DIR's per-sample results as a flat table: id, gold, segments, each model's answer,
    confidence, validity, tokens, cost, batch and request ids, and the scores.

    \b
    Examples:
      evalkit export reports/triage/20261201-101500-ab12cd                 # → …/samples.csv
      evalkit export reports/triage/20261201-101500-ab12cd --format jsonl -o - | jq .
    """
    from evalkit import api  # noqa: PLC0415

    target = out or run_dir / f"samples.{fmt}"
    if str(target) != "-" and target.resolve() in {(run_dir / name).resolve() for name in RUN_FILES}:
        raise UsageError(f"{target} is one of the run's own files; evalkit export does not overwrite it",
                         hint="give --out another path, or leave it out (RUN_DIR/samples.<format>)")
    text, count = api.export_results(run_dir, fmt)
    with click.open_file(str(target), "w", encoding="utf-8", atomic=str(target) != "-") as handle:
        handle.write(text)
    if str(target) != "-":
        click.echo(f"{count} samples written to {target}")


PROJECT = click.option("--project", "path", type=click.Path(exists=True, path_type=Path), default=None,
                       metavar="TASK.yaml|DIR",
                       help="Whose evalkit.toml applies: a task file or a folder (default: the current "
                            "folder; the nearest evalkit.toml upward is used).")


@main.group(invoke_without_command=True)
@PROJECT
@click.option("--toml", "as_toml", is_flag=True,
              help="Print the table as an evalkit.toml [pricing] section to edit and paste (the refresh "
                   "path).")
@click.pass_context
def prices(ctx: click.Context, path: Path | None, as_toml: bool) -> None:
    """The price table runs use: the built-in prices with their as-of date and source, and the project's
    evalkit.toml [pricing] overrides (marked).

    \b
    Refresh it: check the source, then override in evalkit.toml (see docs/pricing.md):
      evalkit prices --toml >> evalkit.toml     # then edit the numbers and as_of
      evalkit prices check --max-age 90         # exit 1 when older than 90 days
    """
    if ctx.invoked_subcommand is not None:
        return
    from evalkit import api  # noqa: PLC0415

    with _logging(ctx):
        listing = api.price_table(_settings_start(path))
        if as_toml:
            click.echo(listing.as_toml())
            return
        _print_prices(listing)


def _settings_start(path: Path | None) -> Path | None:
    return path.parent if path is not None and path.is_file() else path


def _print_prices(listing: Any) -> None:
    table, age = listing.table, listing.age
    days = f"{age.days} days ago" if age.days is not None else "not a date"
    click.echo(f"prices as of {table.as_of} ({days}) · source: {table.source}")
    click.echo(f"USD per million tokens, real time; batch requests pay {100 * table.batch_discount:g}%"
               + (f" · overrides from {listing.settings_file}" if listing.table.overridden else ""))
    click.echo(f"{'model':<28} {'input':>8} {'output':>8} {'write 5m':>9} {'write 1h':>9} {'read':>8}")
    for row in listing.rows:
        p = row.prices
        marks = (["evalkit.toml"] if row.overridden else []) + [f"alias {a}" for a in row.aliases]
        if row.long_context is not None:
            marks.append(f"over {row.long_context.threshold_tokens:,} tokens: {row.long_context.input:g}/"
                         f"{row.long_context.output:g}")
        if p.note:
            marks.append(p.note)
        click.echo(f"{row.model:<28} {p.input:>8g} {p.output:>8g} {p.cache_write_5m:>9g} "
                   f"{p.cache_write_1h:>9g} {p.cache_read:>8g}" + (f"  ({'; '.join(marks)})" if marks else
                                                                    ""))
    for line in listing.platform_lines():  # models.provider: bedrock | vertex
        click.echo(line)


@prices.command("check")
@PROJECT
@click.option("--max-age", "max_age", type=click.IntRange(min=0), default=90, show_default=True,
              metavar="DAYS", help="Warn (exit 1) when the table's as_of date is older than DAYS.")
def prices_check(path: Path | None, max_age: int) -> None:
    """Check that the price table is recent: exit 0 when its as_of date is within --max-age days, 1 (with
    how to refresh it) when older. For CI: prices change."""
    from evalkit import api  # noqa: PLC0415

    listing = api.price_table(_settings_start(path), max_age_days=max_age)
    age = listing.age
    if not age.stale:
        click.echo(f"prices as of {listing.table.as_of}: {age.days} days old (limit {max_age}): OK")
        return
    what = f"{age.days} days old" if age.days is not None else "not dated (as_of is not YYYY-MM-DD)"
    click.secho(f"warning: the price table is {what}, over the {max_age}-day limit "
                f"(as of {listing.table.as_of}; source: {listing.table.source})", fg="yellow", err=True)
    click.echo("  refresh: check the current prices, then override them in evalkit.toml [pricing] with "
               "as_of set to the day you checked (`evalkit prices --toml` prints the section to edit); "
               "see docs/pricing.md", err=True)
    sys.exit(EXIT_REGRESSION)
