"""Metrics for extraction and free-text tasks, and the per-sample scores their decisions binarise.

A sample of such a task is "right" when its primary metric reaches a threshold (stats-spec §7: "binarize
each sample … and use the binary machinery"): field-level F1 ≥ 0.8 for extraction, token F1 ≥ 0.5 for
text, or the reference model's judgement that the answers are equivalent. The reported metrics keep the
continuous values, with a paired bootstrap interval for the gap to the reference.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats

from evalkit.datasets import Sample
from evalkit.scoring.answers import Answer
from evalkit.scoring.samples import ScoredSample
from evalkit.spec import TaskSpec
from evalkit.scoring.textmetrics import exact_match, field_prf, micro_field_prf, per_field_accuracy, rouge_l, token_f1

#: Metrics that can decide a task (per-sample, in [0, 1]) and the kinds they apply to.
PRIMARY_METRICS: dict[str, tuple[str, ...]] = {
    "exact_match": ("extraction", "text"),
    "token_f1": ("text",),
    "rouge_l": ("text",),
    "field_f1": ("extraction",),
    "judge": ("extraction", "text"),
}
DEFAULT_PRIMARY = {"extraction": "field_f1", "text": "token_f1"}
DEFAULT_THRESHOLD = {"exact_match": 1.0, "token_f1": 0.5, "rouge_l": 0.4, "field_f1": 0.8, "judge": 1.0}


def answer_value(answer: Answer, kind: str) -> Any:
    return answer.fields.get("text", "") if kind == "text" else answer.fields


def pair_score(metric: str, pred: Any, ref: Any, kind: str) -> float:
    """One per-sample metric value, prediction against reference (or gold)."""
    if kind == "extraction":
        if metric == "field_f1":
            return float(field_prf(pred, ref)["f1"])
        if metric == "exact_match":
            return float(field_prf(pred, ref)["exact_record"])
        raise ValueError(f"{metric} does not apply to extraction")
    if metric == "exact_match":
        return exact_match(pred, ref)
    if metric == "token_f1":
        return token_f1(pred, ref)
    if metric == "rouge_l":
        return float(rouge_l(pred, ref)["fmeasure"])
    raise ValueError(f"{metric} does not apply to text")


def primary_metric(task: TaskSpec) -> tuple[str, float]:
    metric = task.decision.metric or DEFAULT_PRIMARY.get(task.output.kind, "label")
    threshold = task.decision.threshold if task.decision.threshold is not None else DEFAULT_THRESHOLD.get(metric, 1.0)
    return metric, threshold


def score_sample(sample: Sample, candidate: Answer, reference: Answer, task: TaskSpec,
                 judge: bool | None = None) -> ScoredSample:
    """The per-sample comparison the decision and routing use."""
    kind = task.output.kind
    if kind == "classification":
        return ScoredSample(sample=sample, candidate=candidate, reference=reference)
    metric, threshold = primary_metric(task)
    primary: dict[str, float | None] = {}
    if metric == "judge":
        primary["cand_vs_ref"] = None if judge is None else float(judge)
    else:
        cand = answer_value(candidate, kind) if candidate.ok else None
        ref = answer_value(reference, kind) if reference.ok else None
        if cand is not None and ref is not None:
            primary["cand_vs_ref"] = pair_score(metric, cand, ref, kind)
        if sample.label is not None:
            primary["cand_vs_gold"] = pair_score(metric, cand, sample.label, kind) if cand is not None else 0.0
            primary["ref_vs_gold"] = pair_score(metric, ref, sample.label, kind) if ref is not None else 0.0
    return ScoredSample(sample=sample, candidate=candidate, reference=reference, kind=kind, primary=primary,
                        threshold=threshold, judge=judge)


def _gap_interval(ref_scores: list[float], cand_scores: list[float]) -> list[float] | None:
    """Paired bootstrap 90% interval of mean(reference − candidate) (stats-spec §2, continuous metrics)."""
    if len(ref_scores) < 10 or np.ptp(np.array(ref_scores) - np.array(cand_scores)) == 0:
        return None
    result = stats.bootstrap((np.array(ref_scores), np.array(cand_scores)),
                             lambda r, c, axis=-1: r.mean(axis) - c.mean(axis), paired=True, vectorized=True,
                             n_resamples=2000, confidence_level=0.90, method="percentile",
                             rng=np.random.default_rng(0))
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def _value_metric(metric: str) -> Callable[[list[ScoredSample], TaskSpec], dict[str, Any]]:
    def compute(rows: list[ScoredSample], task: TaskSpec) -> dict[str, Any]:
        kind = task.output.kind
        cand_ref, cand_gold, ref_gold = [], [], []
        for row in rows:
            if row.candidate.outcome == "error" or row.reference.outcome == "error":
                continue
            cand = answer_value(row.candidate, kind) if row.candidate.ok else None
            ref = answer_value(row.reference, kind) if row.reference.ok else None
            if ref is not None:
                cand_ref.append(pair_score(metric, cand, ref, kind) if cand is not None else 0.0)
            if row.sample.label is not None:
                cand_gold.append(pair_score(metric, cand, row.sample.label, kind) if cand is not None else 0.0)
                ref_gold.append(pair_score(metric, ref, row.sample.label, kind) if ref is not None else 0.0)

        def mean(values: list[float]) -> float | None:
            return float(np.mean(values)) if values else None

        out: dict[str, Any] = {"candidate_vs_reference": mean(cand_ref), "n": len(cand_ref)}
        if cand_gold:
            out.update(candidate_vs_gold=mean(cand_gold), reference_vs_gold=mean(ref_gold),
                       gap_interval_90=_gap_interval(ref_gold, cand_gold))
        return out

    return compute


def metric_field_f1(rows: list[ScoredSample], task: TaskSpec) -> dict[str, Any]:
    """Micro-averaged field precision/recall/F1, plus the per-document mean F1."""
    out = _value_metric("field_f1")(rows, task)
    ok = [row for row in rows if row.candidate.ok and row.reference.ok]
    if ok:
        out["micro_candidate_vs_reference"] = micro_field_prf([(r.candidate.fields, r.reference.fields) for r in ok])
        gold = [r for r in ok if r.sample.label is not None]
        if gold:
            out["micro_candidate_vs_gold"] = micro_field_prf([(r.candidate.fields, r.sample.label) for r in gold])
            out["micro_reference_vs_gold"] = micro_field_prf([(r.reference.fields, r.sample.label) for r in gold])
    return out


def metric_per_field_accuracy(rows: list[ScoredSample], task: TaskSpec) -> dict[str, Any]:
    truth = "gold" if rows and rows[0].sample.label is not None else "reference"
    out: dict[str, Any] = {"truth": truth}
    for role in ("candidate", "reference"):
        if truth == "reference" and role == "reference":
            continue
        pairs = []
        for row in rows:
            answer = row.candidate if role == "candidate" else row.reference
            target = row.sample.label if truth == "gold" else (row.reference.fields if row.reference.ok else None)
            if target is None or answer.outcome == "error":
                continue
            pairs.append((answer.fields if answer.ok else {}, target))
        out[role] = per_field_accuracy(pairs) if pairs else {}
    return out


def metric_judge(rows: list[ScoredSample], task: TaskSpec) -> dict[str, Any]:
    verdicts = [row.judge for row in rows if row.judge is not None]
    return {"equivalent": float(np.mean(verdicts)) if verdicts else None, "judged": len(verdicts),
            "not_judged": len(rows) - len(verdicts)}


#: Metric name -> (output kinds, function).
VALUE_METRICS: dict[str, tuple[tuple[str, ...], Callable[[list[ScoredSample], TaskSpec], dict[str, Any]]]] = {
    "exact_match": (("extraction", "text"), _value_metric("exact_match")),
    "token_f1": (("text",), _value_metric("token_f1")),
    "rouge_l": (("text",), _value_metric("rouge_l")),
    "field_f1": (("extraction",), metric_field_f1),
    "per_field_accuracy": (("extraction",), metric_per_field_accuracy),
    "judge": (("extraction", "text"), metric_judge),
}

JUDGE_SYSTEM = """You compare two answers to the same task and decide whether they are equivalent: whether a
user would be equally well served by either. Ignore wording, order and formatting; judge facts and meaning.
Missing or contradicting key facts make answers not equivalent. Answer with JSON only."""
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"equivalent": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["equivalent", "reason"],
    "additionalProperties": False,
}


def judge_params(task: TaskSpec, sample: Sample, candidate: Answer, reference: Answer) -> dict[str, Any]:
    """The request asking the reference model whether the candidate's answer is equivalent to its own."""
    kind = task.output.kind

    def show(answer: Answer) -> str:
        value = answer_value(answer, kind)
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)

    user = (f"<task_input>\n{sample.text}\n</task_input>\n<reference_answer>\n{show(reference)}\n"
            f"</reference_answer>\n<candidate_answer>\n{show(candidate)}\n</candidate_answer>")
    return {
        "model": task.models.reference,
        "max_tokens": 300,
        "system": [{"type": "text", "text": JUDGE_SYSTEM}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": user}]}],
        "output_config": {"format": {"type": "json_schema", "schema": JUDGE_SCHEMA}},
    }


def parse_judge(response_text: str | None) -> bool | None:
    if not response_text:
        return None
    try:
        data = json.loads(response_text)
    except json.JSONDecodeError:
        return None
    value = data.get("equivalent") if isinstance(data, dict) else None
    return value if isinstance(value, bool) else None
