"""Scoring: per-sample comparisons and the task's metrics.

Two modes, chosen by the data: with gold labels every model is scored against gold ("gold"); without
them the reference's answer is the truth and the candidate is scored on agreement ("reference").
Invalid answers count as wrong. Unanswered calls (API errors after retries) are excluded and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sklearn.metrics import cohen_kappa_score, confusion_matrix, f1_score

from evalkit.datasets import Sample
from evalkit.scoring.answers import Answer
from evalkit.spec import TaskSpec

INVALID = "__invalid__"
Mode = Literal["gold", "reference"]


@dataclass(frozen=True)
class ScoredSample:
    """One sample's two answers, compared.

    Classification compares labels. Extraction and text tasks compare with a per-sample metric
    (``primary``: candidate vs reference, each vs gold) and count a sample as right when the metric
    reaches ``threshold`` — so every decision and routing method works on the same binary outcomes.
    """

    sample: Sample
    candidate: Answer
    reference: Answer
    kind: str = "classification"
    primary: dict[str, float | None] = field(default_factory=dict)
    threshold: float = 1.0
    judge: bool | None = None  # the reference-as-judge verdict, when asked

    @property
    def agree(self) -> bool | None:
        """Candidate matches reference; None when the reference gave no valid answer or a call failed."""
        if not self.reference.ok or self.candidate.outcome == "error":
            return None
        if not self.candidate.ok:
            return False
        if self.kind == "classification":
            return self.candidate.label == self.reference.label
        value = self.primary.get("cand_vs_ref")
        return None if value is None else value >= self.threshold

    def correct(self, role: str) -> bool | None:
        """Correct against gold; None without gold or when the call failed."""
        answer = self.candidate if role == "candidate" else self.reference
        if self.sample.label is None or answer.outcome == "error":
            return None
        if not answer.ok:
            return False
        if self.kind == "classification":
            return answer.label == self.sample.label
        value = self.primary.get("cand_vs_gold" if role == "candidate" else "ref_vs_gold")
        return None if value is None else value >= self.threshold

    @property
    def gold_capable(self) -> bool:
        return self.sample.label is not None and (self.kind == "classification"
                                                  or self.primary.get("ref_vs_gold") is not None)

    def scores(self) -> dict[str, Any]:
        return {"agree": self.agree, "candidate_correct": self.correct("candidate"),
                "reference_correct": self.correct("reference")}


def _prediction(answer: Answer) -> str:
    return answer.label if answer.ok and answer.label is not None else INVALID


def _rate(values: Sequence[bool | None]) -> dict[str, Any]:
    kept = [bool(v) for v in values if v is not None]
    return {"value": float(np.mean(kept)) if kept else None, "successes": int(sum(kept)), "n": len(kept)}


def _kappa(a: list[str], b: list[str]) -> float | None:
    if len(a) < 2:
        return None
    value = cohen_kappa_score(a, b, replace_undefined_by=np.nan)
    return None if np.isnan(value) else float(value)


def _macro_f1(truth: list[str], predicted: list[str], labels: list[str]) -> float | None:
    if not truth:
        return None
    return float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0))


def metric_agreement(rows: list[ScoredSample], task: TaskSpec) -> dict[str, Any]:
    return _rate([row.agree for row in rows])


def metric_accuracy(rows: list[ScoredSample], task: TaskSpec) -> dict[str, Any] | None:
    if not rows or rows[0].sample.label is None:
        return None
    return {role: _rate([row.correct(role) for row in rows]) for role in ("candidate", "reference")}


def _pairs(rows: list[ScoredSample], truth: str, role: str) -> tuple[list[str], list[str]]:
    y_true, y_pred = [], []
    for row in rows:
        answer = row.candidate if role == "candidate" else row.reference
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


def metric_macro_f1(rows: list[ScoredSample], task: TaskSpec) -> dict[str, Any]:
    labels = task.output.label_names
    result: dict[str, Any] = {"candidate_vs_reference": _macro_f1(*_pairs(rows, "reference", "candidate"), labels)}
    if rows and rows[0].sample.label is not None:
        result["candidate_vs_gold"] = _macro_f1(*_pairs(rows, "gold", "candidate"), labels)
        result["reference_vs_gold"] = _macro_f1(*_pairs(rows, "gold", "reference"), labels)
    return result


def metric_kappa(rows: list[ScoredSample], task: TaskSpec) -> dict[str, Any]:
    result: dict[str, Any] = {"candidate_vs_reference": _kappa(*_pairs(rows, "reference", "candidate"))}
    if rows and rows[0].sample.label is not None:
        result["candidate_vs_gold"] = _kappa(*_pairs(rows, "gold", "candidate"))
        result["reference_vs_gold"] = _kappa(*_pairs(rows, "gold", "reference"))
    return result


def metric_confusion_matrix(rows: list[ScoredSample], task: TaskSpec) -> dict[str, Any]:
    """Rows = truth (gold when present, else the reference); columns = candidate labels + invalid."""
    truth = "gold" if rows and rows[0].sample.label is not None else "reference"
    y_true, y_pred = _pairs(rows, truth, "candidate")
    labels = task.output.label_names
    size = len(labels) + 1
    matrix = confusion_matrix(y_true, y_pred, labels=[*labels, INVALID]) if y_true else np.zeros((size, size), int)
    return {"truth": truth, "labels": labels, "columns": [*labels, "invalid"],
            "matrix": [[int(v) for v in row] for row in matrix[: len(labels)]]}


def metric_per_label(rows: list[ScoredSample], task: TaskSpec) -> dict[str, Any]:
    """Agreement (and accuracy vs gold) per true label."""
    gold = bool(rows) and rows[0].sample.label is not None
    out: dict[str, Any] = {}
    for label in task.output.label_names:
        if gold:
            members = [row for row in rows if row.sample.label == label]
        else:
            members = [row for row in rows if row.reference.ok and row.reference.label == label]
        entry: dict[str, Any] = {"n": len(members), "agreement": _rate([row.agree for row in members])}
        if gold:
            entry["candidate_accuracy"] = _rate([row.correct("candidate") for row in members])
            entry["reference_accuracy"] = _rate([row.correct("reference") for row in members])
        out[label] = entry
    return out


MetricFn = Callable[[list[ScoredSample], TaskSpec], Any]

#: Metrics a task can name in ``metrics:``. per_label is always computed (the decision needs it).
METRICS: dict[str, MetricFn] = {
    "agreement": metric_agreement,
    "accuracy": metric_accuracy,
    "macro_f1": metric_macro_f1,
    "kappa": metric_kappa,
    "confusion_matrix": metric_confusion_matrix,
    "per_label": metric_per_label,
}
#: Which output kinds each label metric applies to.
METRIC_KINDS: dict[str, tuple[str, ...]] = {
    "agreement": ("classification", "extraction", "text"),
    "accuracy": ("classification", "extraction", "text"),
    "macro_f1": ("classification",), "kappa": ("classification",),
    "confusion_matrix": ("classification",), "per_label": ("classification",),
}


def check_metric_names(task: TaskSpec) -> None:
    from evalkit.scoring.valuemetrics import PRIMARY_METRICS, VALUE_METRICS  # noqa: PLC0415

    kind = task.output.kind
    kinds_of = {**METRIC_KINDS, **{name: kinds for name, (kinds, _) in VALUE_METRICS.items()}}
    available = [name for name, kinds in kinds_of.items() if kind in kinds]
    for index, name in enumerate(task.metric_names):
        if name not in available:
            import difflib  # noqa: PLC0415

            close = difflib.get_close_matches(name, available, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise task.error(f"metrics[{index}]", f"metric '{name}' is not available for {kind} tasks",
                             hint=f"{hint}available: {', '.join(available)}")
    metric = task.decision.metric
    if metric is not None and (metric not in PRIMARY_METRICS or kind not in PRIMARY_METRICS[metric]):
        usable = [name for name, kinds in PRIMARY_METRICS.items() if kind in kinds]
        raise task.error("decision.metric", f"'{metric}' cannot decide a {kind} task",
                         hint=f"use one of {', '.join(usable)}")


def compute_metrics(rows: list[ScoredSample], task: TaskSpec) -> dict[str, Any]:
    from evalkit.scoring.valuemetrics import VALUE_METRICS  # noqa: PLC0415

    extra = ["per_label"] if task.output.kind == "classification" else []
    names = list(dict.fromkeys([*task.metric_names, "agreement", *extra]))
    out = {}
    for name in names:
        if name in METRICS:
            out[name] = METRICS[name](rows, task)
        else:
            out[name] = VALUE_METRICS[name][1](rows, task)  # type: ignore[index]
    return out


def outcome_counts(rows: list[ScoredSample]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for role in ("candidate", "reference"):
        tally = {"ok": 0, "invalid": 0, "error": 0}
        for row in rows:
            answer = row.candidate if role == "candidate" else row.reference
            tally[answer.outcome] += 1
        counts[role] = tally
    return counts


def scoring_mode(rows: list[ScoredSample]) -> Mode:
    return "gold" if rows and all(row.gold_capable for row in rows) else "reference"
