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
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from evalkit.routing import calibration
from evalkit.routing import thresholds as routing_math
from evalkit.config import PricingTable
from evalkit.record.rows import SampleResult
from evalkit.scoring.samples import scoring_mode

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


def _signals(results: list[SampleResult], honour_flag: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(confidence with forced escalations as NaN — always escalated —, candidate right, reference right, mode)."""
    rows = [r.scored for r in results]
    mode = scoring_mode(rows)
    conf, cand, ref = [], [], []
    for result, row in zip(results, rows, strict=True):
        answer = result.answers["candidate"]
        if mode == "gold":
            c, r = row.correct("candidate"), row.correct("reference")
        else:
            c, r = row.agree, True
        if c is None or r is None:
            continue  # unanswered calls are not routing evidence
        forced = (not answer.ok) or answer.confidence is None or (honour_flag and answer.escalate is True)
        conf.append(float("nan") if forced else float(answer.confidence))  # type: ignore[arg-type]
        cand.append(bool(c))
        ref.append(bool(r))
    return np.array(conf, float), np.array(cand, bool), np.array(ref, bool), mode


def _per_request_costs(results: list[SampleResult], pricing: PricingTable) -> tuple[float, float]:
    """Mean USD per request for each model at real-time (production) rates, from measured usage."""
    from evalkit.cost.projection import mean_usage, per_request_cost  # noqa: PLC0415

    out = []
    for role in ("candidate", "reference"):
        usage = mean_usage(results, role)
        out.append(per_request_cost(pricing, usage, caching=usage.prefix_tokens > 0, batch=False) if usage else 0.0)
    return out[0], out[1]


def _row_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"t": row["t"], "escalation_rate": round(row["escalation_rate"], 6),
            "routed_accuracy": round(row["routed_accuracy"], 6), "quality_loss": round(row["harm_rate"], 6),
            "cost_per_1k": round(1000 * row["cost"], 6), "ltt_p": row["ltt_p"]}


def analyse_routing(results: list[SampleResult], pricing: PricingTable,
                    options: RoutingOptions | None = None) -> dict[str, Any]:
    """The whole routing analysis, as a JSON-ready dict (also what ``routing.json`` is built from)."""
    options = options or RoutingOptions()
    conf, cand, ref, mode = _signals(results, options.honour_escalate_flag)
    n = len(conf)
    if n < 20:
        return {"available": False, "why": f"only {n} samples have both answers; routing needs at least 20"}
    c_cand, c_ref = _per_request_costs(results, pricing)
    alpha = options.target_loss
    rows = routing_math.sweep(conf, cand, ref, cost_candidate=c_cand, cost_reference=c_ref, alpha=alpha)
    by_t = {round(float(row["t"]), 2): row for row in rows}

    def select(indices: np.ndarray) -> float | None:
        sub = routing_math.sweep(conf[indices], cand[indices], ref[indices], cost_candidate=c_cand,
                                 cost_reference=c_ref, alpha=alpha)
        return _pick(sub, conf[indices], options)

    def naive(indices: np.ndarray) -> float | None:
        sub = routing_math.sweep(conf[indices], cand[indices], ref[indices], cost_candidate=c_cand,
                                 cost_reference=c_ref, alpha=alpha)
        return routing_math.pick_naive(sub, alpha) if options.objective == "quality" else _pick(sub, conf[indices], options)

    chosen_t = _pick(rows, conf, options)
    naive_t = routing_math.pick_naive(rows, alpha)
    fit = routing_math.cross_fit(conf, cand, ref, select, folds=5, seed=options.seed,
                                 cost_candidate=c_cand, cost_reference=c_ref)
    naive_fit = routing_math.cross_fit(conf, cand, ref, naive, folds=5, seed=options.seed,
                                       cost_candidate=c_cand, cost_reference=c_ref)
    always_ref = float(ref.mean())
    chosen = _row_view(by_t[chosen_t]) if chosen_t is not None else None
    naive_row = _row_view(by_t[naive_t]) if naive_t is not None else None
    default_row = _row_view(by_t[SEED_DEFAULT_THRESHOLD])
    valid = np.isfinite(conf)
    calib = (calibration.calibration_report(cand[valid].astype(int), conf[valid])
             if valid.sum() >= 20 and 0 < cand[valid].mean() < 1 else None)
    return {
        "available": True,
        "mode": mode,
        "n": n,
        "objective": _objective_text(options),
        "options": {"objective": options.objective, "target_loss": options.target_loss, "delta": options.delta,
                    "budget_per_1k": options.budget_per_1k, "escalation_rate": options.escalation_rate,
                    "honour_escalate_flag": options.honour_escalate_flag},
        "costs": {"candidate_per_request": c_cand, "reference_per_request": c_ref,
                  "always_reference_per_1k": 1000 * c_ref, "always_candidate_per_1k": 1000 * c_cand,
                  "break_even_escalation_rate": (1 - c_cand / c_ref) if c_ref else None},
        "always_reference_accuracy": always_ref,
        "always_candidate_accuracy": float(cand.mean()),
        "forced_escalations": int(np.isnan(conf).sum()),
        "sweep": [_row_view(row) for row in rows],
        "pareto": [_row_view(row) for row in routing_math.pareto_front(rows)],
        "seed_default": default_row,
        "chosen": chosen,
        "guarantee": _guarantee_text(options, chosen_t, n),
        "cross_fitted": _fit_view(fit, c_cand, c_ref),
        "naive": {"threshold": naive_t, "in_sample": naive_row, "cross_fitted": _fit_view(naive_fit, c_cand, c_ref),
                  "optimism_quality_loss": (None if naive_row is None else
                                            round(naive_fit["harm_rate"] - naive_row["quality_loss"], 6))},
        "calibration": calib,
    }


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


def _fit_view(fit: dict[str, Any], c_cand: float, c_ref: float) -> dict[str, Any]:
    return {"fold_thresholds": fit["fold_thresholds"], "folds_without_threshold": fit["folds_without_threshold"],
            "escalation_rate": round(fit["escalation_rate"], 6), "routed_accuracy": round(fit["routed_accuracy"], 6),
            "quality_loss": round(fit["harm_rate"], 6), "cost_per_1k": round(1000 * fit["cost"], 6)}


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
        return (f"no threshold can be certified with {n} samples at a {100 * options.target_loss:g}-point target "
                f"(even escalating everything needs about {math.ceil(floor)}); raise the target or add samples")
    return (f"with probability ≥ {100 * (1 - options.delta):g}%, routing at t = {threshold:.2f} loses at most "
            f"{100 * options.target_loss:g} points of quality against always using the reference")


def routing_file(analysis: dict[str, Any], *, task_name: str, candidate: str, reference: str,
                 evidence: dict[str, Any]) -> dict[str, Any]:
    """What ``routing.json`` holds: the threshold to ship and the evidence behind it."""
    chosen = analysis.get("chosen")
    return {
        "schema": 1,
        "task": task_name,
        "candidate": candidate,
        "reference": reference,
        "threshold": chosen["t"] if chosen else None,
        "escalate_when": "confidence < threshold, or escalate flag set, or invalid candidate answer",
        "honour_escalate_flag": analysis["options"]["honour_escalate_flag"],
        "objective": analysis["objective"],
        "objective_kind": analysis["options"]["objective"],
        "target_loss": analysis["options"]["target_loss"],
        "delta": analysis["options"]["delta"],
        "guarantee": analysis["guarantee"],
        "expected": analysis["cross_fitted"],
        "in_sample": chosen,
        "always_reference_accuracy": analysis["always_reference_accuracy"],
        "costs": analysis["costs"],
        "evidence": evidence,
    }
