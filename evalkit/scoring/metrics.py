"""The task's metrics over scored samples: one registry, one typed result per metric.

Label metrics (agreement, accuracy, macro-F1, kappa, confusion matrix, per label) and value metrics for
extraction and free text (exact match, token F1, ROUGE-L, field F1, per-field accuracy, the judge).
Continuous metrics keep their values, with a paired bootstrap interval for the gap to the reference;
the decision itself uses the binarised per-sample outcomes (:mod:`evalkit.scoring.samples`).

:func:`metric_def` is the one lookup: the built-in :data:`METRICS`, then the task's own functions and the
``evalkit.metrics`` entry points (:mod:`evalkit.scoring.custom`), which are value metrics of any kind and
can decide.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from evalkit import _labelstats as _skm  # sklearn.metrics' numbers without its import
from evalkit._lazy import lazy
from evalkit._typed import Typed
from evalkit.datasets import Sample
from evalkit.scoring.answers import Answer
from evalkit.scoring.custom import custom_metric, entry_point_names
from evalkit.scoring.samples import PRIMARY_METRICS, ROLES, ScoredSample, Scorer, answer_value, pair_scorer
from evalkit.scoring.textmetrics import micro_field_prf, per_field_accuracy
from evalkit.spec import TaskSpec

stats = lazy("scipy.stats")

INVALID = "__invalid__"


# -- result types ---------------------------------------------------------------------------------
class Rate(Typed):
    value: float | None
    successes: int
    n: int


class RoleRates(Typed):
    candidate: Rate
    reference: Rate


class PairScores(Typed):
    """One score for each comparison: candidate vs reference, and each model vs gold when there is gold."""

    candidate_vs_reference: float | None
    candidate_vs_gold: float | None = None
    reference_vs_gold: float | None = None


class ConfusionMatrix(Typed):
    """Rows = truth (gold when present, else the reference); columns = candidate labels + invalid."""

    truth: str
    labels: list[str]
    columns: list[str]
    matrix: list[list[int]]


class LabelMetrics(Typed):
    n: int
    agreement: Rate
    candidate_accuracy: Rate | None = None
    reference_accuracy: Rate | None = None


class FieldScores(Typed):
    tp: int
    n_pred: int
    n_ref: int
    precision: float
    recall: float
    f1: float
    exact_record: float
    n_docs: int | None = None


class ValueMetric(Typed):
    """Mean per-sample value of a continuous metric (and, for field F1, the micro averages)."""

    candidate_vs_reference: float | None
    n: int
    candidate_vs_gold: float | None = None
    reference_vs_gold: float | None = None
    gap_interval_90: list[float] | None = None
    micro_candidate_vs_reference: FieldScores | None = None
    micro_candidate_vs_gold: FieldScores | None = None
    micro_reference_vs_gold: FieldScores | None = None


class PerFieldAccuracy(Typed):
    truth: str
    candidate: dict[str, float] | None = None
    reference: dict[str, float] | None = None


class JudgeMetric(Typed):
    equivalent: float | None
    judged: int
    not_judged: int


class Metrics(Typed):
    """Every metric a run computed; the ones a task did not ask for are None."""

    agreement: Rate
    accuracy: RoleRates | None = None
    macro_f1: PairScores | None = None
    kappa: PairScores | None = None
    confusion_matrix: ConfusionMatrix | None = None
    per_label: dict[str, LabelMetrics] | None = None
    exact_match: ValueMetric | None = None
    token_f1: ValueMetric | None = None
    rouge_l: ValueMetric | None = None
    field_f1: ValueMetric | None = None
    per_field_accuracy: PerFieldAccuracy | None = None
    judge: JudgeMetric | None = None
    #: The task's own metrics (``metrics: [{name, function}]`` or entry points), by name.
    custom: dict[str, ValueMetric] | None = None


class OutcomeCounts(Typed):
    ok: int = 0
    invalid: int = 0
    error: int = 0


# -- label metrics ----------------------------------------------------------------------------------
def _has_gold(rows: list[ScoredSample]) -> bool:
    return bool(rows) and rows[0].sample.label is not None


def _prediction(answer: Answer) -> str:
    return answer.label if answer.ok and answer.label is not None else INVALID


def _rate(values: Sequence[bool | None]) -> Rate:
    kept = [bool(v) for v in values if v is not None]
    return Rate(value=float(np.mean(kept)) if kept else None, successes=int(sum(kept)), n=len(kept))


def _kappa(a: list[str], b: list[str]) -> float | None:
    labels = sorted(set(a) | set(b))
    if len(a) < 2 or len(labels) < 2:  # one label everywhere: agreement beyond chance is undefined
        return None
    value = _skm.cohen_kappa_score(a, b, labels=labels, replace_undefined_by=np.nan)
    return None if np.isnan(value) else float(value)


def _macro_f1(truth: list[str], predicted: list[str], labels: list[str]) -> float | None:
    if not truth:
        return None
    return float(_skm.f1_score(truth, predicted, labels=labels, average="macro", zero_division=0))


def _pairs(rows: list[ScoredSample], truth: str, role: str) -> tuple[list[str], list[str]]:
    y_true, y_pred = [], []
    for row in rows:
        answer = row.answer(role)
        if answer.outcome == "error":
            continue
        if truth == "gold":
            if row.sample.label is None:
                continue
            y_true.append(row.sample.label)
        else:
            if not row.reference.ok or row.candidate.outcome == "error":
                continue
            y_true.append(_prediction(row.reference))
        y_pred.append(_prediction(answer))
    return y_true, y_pred


def metric_agreement(rows: list[ScoredSample], task: TaskSpec) -> Rate:
    return _rate([row.agree for row in rows])


def metric_accuracy(rows: list[ScoredSample], task: TaskSpec) -> RoleRates | None:
    if not _has_gold(rows):
        return None
    return RoleRates(candidate=_rate([row.correct("candidate") for row in rows]),
                     reference=_rate([row.correct("reference") for row in rows]))


def _pair_scores(rows: list[ScoredSample],
                 score: Callable[[list[str], list[str]], float | None]) -> PairScores:
    if not _has_gold(rows):
        return PairScores(candidate_vs_reference=score(*_pairs(rows, "reference", "candidate")))
    return PairScores(candidate_vs_reference=score(*_pairs(rows, "reference", "candidate")),
                      candidate_vs_gold=score(*_pairs(rows, "gold", "candidate")),
                      reference_vs_gold=score(*_pairs(rows, "gold", "reference")))


def metric_macro_f1(rows: list[ScoredSample], task: TaskSpec) -> PairScores:
    labels = task.output.label_names
    return _pair_scores(rows, lambda truth, predicted: _macro_f1(truth, predicted, labels))


def metric_kappa(rows: list[ScoredSample], task: TaskSpec) -> PairScores:
    return _pair_scores(rows, _kappa)


def metric_confusion_matrix(rows: list[ScoredSample], task: TaskSpec) -> ConfusionMatrix:
    truth = "gold" if _has_gold(rows) else "reference"
    y_true, y_pred = _pairs(rows, truth, "candidate")
    labels = task.output.label_names
    size = len(labels) + 1
    matrix = (_skm.confusion_matrix(y_true, y_pred, labels=[*labels, INVALID]) if y_true
              else np.zeros((size, size), int))
    return ConfusionMatrix(truth=truth, labels=labels, columns=[*labels, "invalid"],
                           matrix=[[int(v) for v in row] for row in matrix[: len(labels)]])


def metric_per_label(rows: list[ScoredSample], task: TaskSpec) -> dict[str, LabelMetrics]:
    """Agreement (and accuracy vs gold) per true label."""
    gold = _has_gold(rows)
    out: dict[str, LabelMetrics] = {}
    for label in task.output.label_names:
        if gold:
            members = [row for row in rows if row.sample.label == label]
            out[label] = LabelMetrics(n=len(members), agreement=_rate([row.agree for row in members]),
                                      candidate_accuracy=_rate([row.correct("candidate") for row in members]),
                                      reference_accuracy=_rate([row.correct("reference") for row in members]))
        else:
            members = [row for row in rows if row.reference.ok and row.reference.label == label]
            out[label] = LabelMetrics(n=len(members), agreement=_rate([row.agree for row in members]))
    return out


# -- value metrics (extraction and text) ------------------------------------------------------------
def _gap_interval(ref_scores: list[float], cand_scores: list[float]) -> list[float] | None:
    """Paired bootstrap 90% interval of mean(reference − candidate) (stats-spec §2, continuous metrics)."""
    if len(ref_scores) < 10 or np.ptp(np.array(ref_scores) - np.array(cand_scores)) == 0:
        return None
    result = stats.bootstrap((np.array(ref_scores), np.array(cand_scores)),
                             lambda r, c, axis=-1: r.mean(axis) - c.mean(axis), paired=True, vectorized=True,
                             n_resamples=2000, confidence_level=0.90, method="percentile",
                             rng=np.random.default_rng(0))
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _value_metric(metric: str) -> Callable[[list[ScoredSample], TaskSpec], ValueMetric]:
    def compute(rows: list[ScoredSample], task: TaskSpec) -> ValueMetric:
        kind = task.output.kind
        score: Scorer = pair_scorer(metric, task)
        cand_ref, cand_gold, ref_gold = [], [], []
        for row in rows:
            if row.candidate.outcome == "error" or row.reference.outcome == "error":
                continue
            cand = answer_value(row.candidate, kind) if row.candidate.ok else None
            ref = answer_value(row.reference, kind) if row.reference.ok else None
            sample = row.sample
            if ref is not None:
                cand_ref.append(score(cand, ref, sample, "reference") if cand is not None else 0.0)
            if sample.label is not None:
                cand_gold.append(score(cand, sample.label, sample, "gold") if cand is not None else 0.0)
                ref_gold.append(score(ref, sample.label, sample, "gold") if ref is not None else 0.0)
        if not cand_gold:
            return ValueMetric(candidate_vs_reference=_mean(cand_ref), n=len(cand_ref))
        return ValueMetric(candidate_vs_reference=_mean(cand_ref), n=len(cand_ref),
                           candidate_vs_gold=_mean(cand_gold), reference_vs_gold=_mean(ref_gold),
                           gap_interval_90=_gap_interval(ref_gold, cand_gold))

    return compute


def metric_field_f1(rows: list[ScoredSample], task: TaskSpec) -> ValueMetric:
    """Micro-averaged field precision/recall/F1, plus the per-document mean F1."""
    out = _value_metric("field_f1")(rows, task)
    ok = [row for row in rows if row.candidate.ok and row.reference.ok]
    if not ok:
        return out
    micro = {"micro_candidate_vs_reference": FieldScores.model_validate(
        micro_field_prf([(r.candidate.fields, r.reference.fields) for r in ok]))}
    gold = [r for r in ok if r.sample.label is not None]
    if gold:
        micro["micro_candidate_vs_gold"] = FieldScores.model_validate(
            micro_field_prf([(r.candidate.fields, r.sample.label) for r in gold]))
        micro["micro_reference_vs_gold"] = FieldScores.model_validate(
            micro_field_prf([(r.reference.fields, r.sample.label) for r in gold]))
    return out.model_copy(update=micro)


def metric_per_field_accuracy(rows: list[ScoredSample], task: TaskSpec) -> PerFieldAccuracy:
    truth = "gold" if _has_gold(rows) else "reference"
    per_role: dict[str, dict[str, float]] = {}
    for role in ROLES:
        if truth == "reference" and role == "reference":
            continue
        pairs = []
        for row in rows:
            answer = row.answer(role)
            target = (row.sample.label if truth == "gold"
                      else (row.reference.fields if row.reference.ok else None))
            if target is None or answer.outcome == "error":
                continue
            pairs.append((answer.fields if answer.ok else {}, target))
        per_role[role] = per_field_accuracy(pairs) if pairs else {}
    return PerFieldAccuracy(truth=truth, **per_role)


def metric_judge(rows: list[ScoredSample], task: TaskSpec) -> JudgeMetric:
    verdicts = [row.judge for row in rows if row.judge is not None]
    return JudgeMetric(equivalent=float(np.mean(verdicts)) if verdicts else None, judged=len(verdicts),
                       not_judged=len(rows) - len(verdicts))


# -- the registry -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricDef:
    kinds: tuple[str, ...]
    compute: Callable[[list[ScoredSample], TaskSpec], BaseModel | dict[str, LabelMetrics] | None]
    custom: bool = False  # the task's own function or an entry point, not one of METRICS


_ALL = ("classification", "extraction", "text")
#: Every metric a task can name in ``metrics:``, with the output kinds it applies to.
METRICS: dict[str, MetricDef] = {
    "agreement": MetricDef(_ALL, metric_agreement),
    "accuracy": MetricDef(_ALL, metric_accuracy),
    "macro_f1": MetricDef(("classification",), metric_macro_f1),
    "kappa": MetricDef(("classification",), metric_kappa),
    "confusion_matrix": MetricDef(("classification",), metric_confusion_matrix),
    "per_label": MetricDef(("classification",), metric_per_label),
    "exact_match": MetricDef(("extraction", "text"), _value_metric("exact_match")),
    "token_f1": MetricDef(("text",), _value_metric("token_f1")),
    "rouge_l": MetricDef(("text",), _value_metric("rouge_l")),
    "field_f1": MetricDef(("extraction",), metric_field_f1),
    "per_field_accuracy": MetricDef(("extraction",), metric_per_field_accuracy),
    "judge": MetricDef(("extraction", "text"), metric_judge),
}


def metric_def(name: str, task: TaskSpec) -> MetricDef | None:
    """The metric ``name`` as ``task`` would compute it: built in, or the task's custom one (a function
    named in ``metrics:`` or an ``evalkit.metrics`` entry point); None when there is no such metric."""
    entry = task.metric_entry(name)
    if name in METRICS and (entry is None or entry[1].function is None):
        return METRICS[name]
    if custom_metric(task, name, set(METRICS)) is None:
        return None
    return MetricDef(_ALL, _value_metric(name), custom=True)


def check_metric_names(task: TaskSpec) -> None:
    """Every metric the task names exists for its output kind (custom ones load), and the decision metric
    can decide it."""
    kind = task.output.kind
    available = [name for name, metric in METRICS.items() if kind in metric.kinds]
    for index, entry in enumerate(task.metrics or []):
        if entry.function and entry.name in METRICS:
            raise task.error(f"metrics[{index}].name", f"'{entry.name}' is a built-in metric",
                             hint="give your function another name")
        if task.metric_names.index(entry.name) != index:
            raise task.error(f"metrics[{index}]", f"metric '{entry.name}' is listed twice",
                             hint="keep one entry per metric")
    for index, name in enumerate(task.metric_names):
        metric = metric_def(name, task)
        if metric is None or kind not in metric.kinds:
            close = difflib.get_close_matches(name, available + entry_point_names(), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            mine = "" if metric is not None else (" or your own: {name: " + name
                                                  + ", function: 'file.py:func'}")
            raise task.error(f"metrics[{index}]", f"metric '{name}' is not available for {kind} tasks",
                             hint=f"{hint}available: {', '.join(available)}{mine}")
    decider = task.decision.metric
    if decider is None:
        return
    if decider in PRIMARY_METRICS and kind in PRIMARY_METRICS[decider]:
        return
    metric = metric_def(decider, task) if decider not in PRIMARY_METRICS else None
    if metric is not None and metric.custom:
        return
    usable = [name for name, kinds in PRIMARY_METRICS.items() if kind in kinds]
    custom = [name for name in task.metric_names if (m := metric_def(name, task)) is not None and m.custom]
    raise task.error("decision.metric", f"'{decider}' cannot decide a {kind} task",
                     hint=f"use one of {', '.join(usable + custom)}" if usable or custom else
                     "list your own under metrics: as {name, function} and name it here "
                     "(docs/custom-metrics.md)")


def try_custom_metrics(task: TaskSpec, samples: list[Sample], *, tries: int = 3) -> None:
    """Call each custom metric on a few samples' gold label scored against itself, before anything is paid
    for: a function that fails there would fail on the answers too (:class:`MetricError`, exit 10)."""
    decider = [task.decision.metric] if task.decision.metric else []
    names = list(dict.fromkeys([*task.metric_names, *decider]))
    gold = [sample for sample in samples if sample.label is not None][:tries]
    for name in names:
        metric = custom_metric(task, name, set(METRICS))
        if metric is not None:
            for sample in gold:
                metric.score(sample.label, sample.label, sample, "gold")


def compute_metrics(rows: list[ScoredSample], task: TaskSpec) -> Metrics:
    """The task's metrics, plus agreement (always) and per-label results (classification)."""
    extra = ["per_label"] if task.output.kind == "classification" else []
    names = list(dict.fromkeys([*task.metric_names, "agreement", *extra]))
    values: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for name in names:
        metric = metric_def(name, task)
        if metric is None:
            raise task.error("metrics", f"no metric '{name}'")
        (custom if metric.custom else values)[name] = metric.compute(rows, task)
    return Metrics.model_validate({**values, "custom": custom or None})


def outcome_counts(rows: list[ScoredSample]) -> dict[str, OutcomeCounts]:
    counts: dict[str, OutcomeCounts] = {}
    for role in ROLES:
        tally = {"ok": 0, "invalid": 0, "error": 0}
        for row in rows:
            tally[row.answer(role).outcome] += 1
        counts[role] = OutcomeCounts(**tally)
    return counts
