"""Routing calibration: the threshold of the two-stage router, chosen on the user's own scored samples.

The router runs the candidate first and escalates to the reference when the candidate's confidence is
below a threshold t, when it sets its escalate flag, or when its answer is invalid (stats-spec §6). For
every t on a fixed grid it computes the escalation rate, routed quality and cost per 1,000 requests;
the threshold is chosen by objective:

* ``quality`` (default): the cheapest t whose quality loss against always-reference is ≤ ``target_loss``
  (default 1 point), certified by Learn-then-Test — P(loss ≤ target) ≥ 1 − δ;
* ``budget``: the most accurate t whose cost per request stays within a budget (no guarantee);
* ``escalation``: the smallest t escalating at least a target share of traffic (cost control only).

Numbers for the chosen rule are 5-fold cross-fitted (held out); the naive in-sample pick is shown beside
them with its optimism. The candidate's confidence is also checked for calibration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from evalkit._typed import Typed
from evalkit.routing import calibration
from evalkit.routing import thresholds as routing_math
from evalkit.routing.rule import forced_escalation
from evalkit.scoring.samples import SampleResult, scoring_mode

Objective = Literal["quality", "budget", "escalation"]
SEED_DEFAULT_THRESHOLD = 0.75  # the threshold the seed's router hard-codes


@dataclass(frozen=True)
class RoutingOptions:
    objective: Objective = "quality"
    target_loss: float = 0.01  # quality objective: allowed loss vs always-reference
    delta: float = 0.10  # LTT: the guarantee holds with probability ≥ 1 − δ
    budget_per_1k: float | None = None  # budget objective: USD per 1,000 requests
    escalation_rate: float | None = None  # escalation objective
    honour_escalate_flag: bool = True
    seed: int = 0


# -- what the analysis returns ------------------------------------------------------------------------
class SweepPoint(Typed):
    """The router at one threshold t."""

    t: float
    escalation_rate: float
    routed_accuracy: float
    quality_loss: float
    cost_per_1k: float
    ltt_p: float | None = None


class CrossFitted(Typed):
    """Held-out numbers for a threshold-selection rule (5-fold cross-fitting)."""

    fold_thresholds: list[float | None]
    folds_without_threshold: int
    escalation_rate: float
    routed_accuracy: float
    quality_loss: float
    cost_per_1k: float


class NaivePick(Typed):
    threshold: float | None
    in_sample: SweepPoint | None
    cross_fitted: CrossFitted
    optimism_quality_loss: float | None


class RoutingCosts(Typed):
    candidate_per_request: float
    reference_per_request: float
    always_reference_per_1k: float
    always_candidate_per_1k: float
    break_even_escalation_rate: float | None


class AppliedOptions(Typed):
    objective: Objective
    target_loss: float
    delta: float
    budget_per_1k: float | None
    escalation_rate: float | None
    honour_escalate_flag: bool


class ScoreSummary(Typed):
    ece_uniform10: float | None
    ece_quantile10: float | None
    brier: float | None
    auroc: float | None


class Reliability(Typed):
    prob_pred: list[float]
    prob_true: list[float]
    counts: list[int]


class CalibrationReport(Typed):
    """How well the candidate's stated confidence matches how often it is right (stats-spec §5)."""

    n: int  # answers with a stated confidence, escalate-flagged ones included
    n_missing_confidence: int  # routable answers without a usable confidence (invalid, or none stated)
    n_escalate_flagged: int = 0  # of ``n``, answers that also set the escalate flag
    accuracy: float
    mean_confidence: float
    n_levels: int
    ece_uniform10: float | None
    ece_quantile10: float | None
    ece_by_level: float | None
    brier: float | None
    auroc: float | None
    reliability: Reliability
    isotonic_cv: ScoreSummary | None
    platt_cv: ScoreSummary | None
    recalibration_helps: str | None


class RoutingAnalysis(Typed):
    """The whole routing analysis (also what ``routing.json`` is built from); ``available`` False says why."""

    available: bool
    why: str | None = None
    mode: str | None = None
    n: int = 0
    objective: str | None = None
    options: AppliedOptions | None = None
    costs: RoutingCosts | None = None
    always_reference_accuracy: float | None = None
    always_candidate_accuracy: float | None = None
    forced_escalations: int = 0
    sweep: list[SweepPoint] = []
    pareto: list[SweepPoint] = []
    seed_default: SweepPoint | None = None
    chosen: SweepPoint | None = None
    #: Whether routing at the chosen threshold costs less than always using the reference (None: no
    #: threshold chosen), and what to do about it.
    pays: bool | None = None
    advice: str | None = None
    guarantee: str | None = None
    cross_fitted: CrossFitted | None = None
    naive: NaivePick | None = None
    calibration: CalibrationReport | None = None


# -- the analysis -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Signals:
    conf: np.ndarray  # routing confidence: NaN where the answer escalates at every threshold
    stated: np.ndarray  # the confidence the candidate stated (NaN when it gave none or was invalid)
    flagged: np.ndarray  # the candidate set its escalate flag
    cand: np.ndarray
    ref: np.ndarray
    mode: str


def _signals(results: Sequence[SampleResult], honour_flag: bool) -> _Signals:
    """Per routable sample: the routing confidence (forced escalations as NaN — always escalated), the
    stated confidence for calibration, the escalate flag, and whether each model was right."""
    rows = [r.scored for r in results]
    mode = scoring_mode(rows)
    conf, stated, flagged, cand, ref = [], [], [], [], []
    for result, row in zip(results, rows, strict=True):
        answer = result.answers["candidate"]
        if mode == "gold":
            c, r = row.correct("candidate"), row.correct("reference")
        else:
            c, r = row.agree, True
        if c is None or r is None:
            continue  # unanswered calls are not routing evidence
        forced = forced_escalation(answer, honour_flag=honour_flag) is not None
        conf.append(float("nan") if forced else float(answer.confidence))  # type: ignore[arg-type]
        has_confidence = answer.ok and answer.confidence is not None
        stated.append(float(answer.confidence) if has_confidence else float("nan"))  # type: ignore[arg-type]
        flagged.append(bool(answer.ok and answer.escalate))
        cand.append(bool(c))
        ref.append(bool(r))
    return _Signals(np.array(conf, float), np.array(stated, float), np.array(flagged, bool),
                    np.array(cand, bool), np.array(ref, bool), mode)


def _point(row: dict[str, Any]) -> SweepPoint:
    return SweepPoint(t=row["t"], escalation_rate=round(row["escalation_rate"], 6),
                      routed_accuracy=round(row["routed_accuracy"], 6),
                      quality_loss=round(row["harm_rate"], 6),
                      cost_per_1k=round(1000 * row["cost"], 6), ltt_p=row["ltt_p"])


def analyse_routing(results: Sequence[SampleResult], costs: tuple[float, float],
                    options: RoutingOptions | None = None, *,
                    memo_dir: Path | None = None) -> RoutingAnalysis:
    """The routing analysis at the mean per-request ``costs`` (candidate, reference) of production.

    ``memo_dir``: where the calibration report is remembered (beside the response cache), so a re-run
    on the same answers does not refit it (:mod:`evalkit.routing.memo`)."""
    options = options or RoutingOptions()
    signals = _signals(results, options.honour_escalate_flag)
    conf, cand, ref, mode = signals.conf, signals.cand, signals.ref, signals.mode
    n = len(conf)
    if n < 20:
        return RoutingAnalysis(available=False,
                               why=f"only {n} samples have both answers; routing needs at least 20")
    c_cand, c_ref = costs
    alpha = options.target_loss
    rows = routing_math.sweep(conf, cand, ref, cost_candidate=c_cand, cost_reference=c_ref, alpha=alpha)
    by_t = {round(float(row["t"]), 2): row for row in rows}

    def sub_sweep(indices: np.ndarray) -> list[dict[str, Any]]:
        return routing_math.sweep(conf[indices], cand[indices], ref[indices], cost_candidate=c_cand,
                                  cost_reference=c_ref, alpha=alpha)

    def select(indices: np.ndarray) -> float | None:
        return _pick(sub_sweep(indices), conf[indices], options)

    def naive(indices: np.ndarray) -> float | None:
        sub = sub_sweep(indices)
        return (routing_math.pick_naive(sub, alpha) if options.objective == "quality"
                else _pick(sub, conf[indices], options))

    chosen_t = _pick(rows, conf, options)
    naive_t = routing_math.pick_naive(rows, alpha)
    fit = routing_math.cross_fit(conf, cand, ref, select, folds=5, seed=options.seed,
                                 cost_candidate=c_cand, cost_reference=c_ref)
    naive_fit = routing_math.cross_fit(conf, cand, ref, naive, folds=5, seed=options.seed,
                                       cost_candidate=c_cand, cost_reference=c_ref)
    naive_row = _point(by_t[naive_t]) if naive_t is not None else None
    # Calibration of every stated confidence, escalate-flagged answers included (routing ignores their
    # confidence, but the model still stated it); answers without one are counted, not dropped silently.
    stated = np.isfinite(signals.stated)
    calib = None
    if stated.sum() >= 20 and 0 < cand[stated].mean() < 1:
        report = calibration.calibration_report(cand.astype(int), signals.stated, memo_dir=memo_dir)
        calib = CalibrationReport.model_validate(
            {**report, "n_escalate_flagged": int((signals.flagged & stated).sum())})
    chosen = _point(by_t[chosen_t]) if chosen_t is not None else None
    break_even = (1 - c_cand / c_ref) if c_ref else None
    pays = None if chosen is None or break_even is None else chosen.escalation_rate < break_even
    return RoutingAnalysis(
        available=True, mode=mode, n=n, objective=_objective_text(options),
        options=AppliedOptions(objective=options.objective, target_loss=options.target_loss,
                               delta=options.delta, budget_per_1k=options.budget_per_1k,
                               escalation_rate=options.escalation_rate,
                               honour_escalate_flag=options.honour_escalate_flag),
        costs=RoutingCosts(candidate_per_request=c_cand, reference_per_request=c_ref,
                           always_reference_per_1k=1000 * c_ref, always_candidate_per_1k=1000 * c_cand,
                           break_even_escalation_rate=break_even),
        always_reference_accuracy=float(ref.mean()), always_candidate_accuracy=float(cand.mean()),
        forced_escalations=int(np.isnan(conf).sum()),
        sweep=[_point(row) for row in rows],
        pareto=[_point(row) for row in routing_math.pareto_front(rows)],
        seed_default=_point(by_t[SEED_DEFAULT_THRESHOLD]),
        chosen=chosen,
        pays=pays,
        advice=_advice(chosen, pays, break_even, c_cand, c_ref),
        guarantee=_guarantee_text(options, chosen_t, n),
        cross_fitted=_fit_view(fit),
        naive=NaivePick(threshold=naive_t, in_sample=naive_row, cross_fitted=_fit_view(naive_fit),
                        optimism_quality_loss=(None if naive_row is None else
                                               round(naive_fit["harm_rate"] - naive_row.quality_loss, 6))),
        calibration=calib,
    )


def _pick(rows: list[dict[str, Any]], conf: np.ndarray, options: RoutingOptions) -> float | None:
    if options.objective == "budget":
        if options.budget_per_1k is None:
            raise ValueError("the budget objective needs budget_per_1k")
        return routing_math.pick_budget(rows, options.budget_per_1k / 1000)
    if options.objective == "escalation":
        if options.escalation_rate is None:
            raise ValueError("the escalation objective needs escalation_rate")
        return routing_math.pick_target_escalation(conf, options.escalation_rate)
    return routing_math.pick_ltt(rows, options.target_loss, options.delta)


def _fit_view(fit: dict[str, Any]) -> CrossFitted:
    return CrossFitted(fold_thresholds=fit["fold_thresholds"],
                       folds_without_threshold=fit["folds_without_threshold"],
                       escalation_rate=round(fit["escalation_rate"], 6),
                       routed_accuracy=round(fit["routed_accuracy"], 6),
                       quality_loss=round(fit["harm_rate"], 6),
                       cost_per_1k=round(1000 * fit["cost"], 6))


def _advice(chosen: SweepPoint | None, pays: bool | None, break_even: float | None, c_cand: float,
            c_ref: float) -> str | None:
    if chosen is None or break_even is None or c_ref <= 0:
        return None
    cost = c_cand + chosen.escalation_rate * c_ref
    change = 100 * (cost / c_ref - 1)
    if not pays:
        return ("no routing threshold pays on this task: the cheapest certified threshold (t = "
                f"{chosen.t:.2f}) "
                f"escalates {100 * chosen.escalation_rate:.1f}% of requests, above the break-even "
                f"{100 * break_even:.1f}%, so routing costs {change:+.1f}% against always using the "
                "reference; "
                "serve the reference, or improve the candidate's confidence signal")
    return (f"routing at t = {chosen.t:.2f} pays: it escalates {100 * chosen.escalation_rate:.1f}% of "
            "requests "
            f"(break-even {100 * break_even:.1f}%), {change:+.1f}% cost against always using the reference")


def _objective_text(options: RoutingOptions) -> str:
    if options.objective == "budget":
        return f"most accurate threshold costing at most ${options.budget_per_1k:g} per 1,000 requests"
    if options.objective == "escalation":
        return f"smallest threshold escalating at least {100 * (options.escalation_rate or 0):g}% of requests"
    return (f"cheapest threshold whose quality loss vs always-reference is ≤ {100 * options.target_loss:g} "
            f"points with probability ≥ {100 * (1 - options.delta):g}% (Learn-then-Test)")


def _guarantee_text(options: RoutingOptions, threshold: float | None, n: int) -> str:
    if options.objective != "quality":
        return "none: this objective is met on these samples only; see the cross-fitted numbers"
    if threshold is None:
        floor = math.log(options.delta) / math.log(1 - options.target_loss)
        return (f"no threshold can be certified with {n} samples at a {100 * options.target_loss:g}-point "
                f"target (even escalating everything needs about {math.ceil(floor)}); raise the target or "
                "add samples")
    return (f"with probability ≥ {100 * (1 - options.delta):g}%, routing at t = {threshold:.2f} loses at "
            f"most {100 * options.target_loss:g} points of quality against always using the reference")
