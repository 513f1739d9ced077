"""Per-sample scoring: each sample's two answers compared, with gold when the data has it.

Two modes, chosen by the data: with gold labels every model is scored against gold ("gold"); without
them the reference's answer is the truth and the candidate is scored on agreement ("reference").
Invalid answers count as wrong. Unanswered calls (API errors after retries) are excluded and counted.

Extraction and text tasks are compared with a per-sample metric and a sample counts as right when it
reaches a threshold (stats-spec §7: "binarize each sample … and use the binary machinery"): field F1 ≥
0.8 for extraction, token F1 ≥ 0.5 for text, or the reference's judgement that the answers are
equivalent. Every decision and routing method then works on the same binary outcomes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from evalkit.datasets import Sample
from evalkit.providers.base import Usage
from evalkit.providers.execute import CallResult
from evalkit.scoring.answers import Answer, parse_answer
from evalkit.scoring.custom import DEFAULT_CUSTOM_THRESHOLD, Against, custom_metric
from evalkit.scoring.textmetrics import exact_match, field_prf, rouge_l, token_f1
from evalkit.spec import OutputSpec, TaskSpec

Mode = Literal["gold", "reference"]
ROLES = ("candidate", "reference")

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
#: A per-sample score: (answer value, truth value, the sample, what the truth is) -> [0, 1].
Scorer = Callable[[Any, Any, Sample, Against], float]


@dataclass(frozen=True, slots=True)  # slots: one per sample or call, all kept (issue 20)
class ScoredSample:
    """One sample's two answers, compared.

    Classification compares labels, unless the decision uses a custom metric. Extraction and text tasks
    (and classification with a custom decision metric) compare with a per-sample metric (``primary``:
    candidate vs reference, each vs gold) and count a sample as right when it reaches ``threshold``.
    """

    sample: Sample
    candidate: Answer
    reference: Answer
    kind: str = "classification"
    primary: dict[str, float | None] = field(default_factory=dict)
    threshold: float = 1.0
    judge: bool | None = None  # the reference-as-judge verdict, when asked
    #: The per-sample metric behind ``primary`` (None: label match for classification, else the default).
    metric: str | None = None

    @property
    def by_label(self) -> bool:
        """Compared by label equality (classification with no per-sample decision metric)."""
        return self.metric == "label" or (self.metric is None and self.kind == "classification")

    @property
    def agree(self) -> bool | None:
        """Candidate matches reference; None when the reference gave no valid answer or a call failed."""
        if not self.reference.ok or self.candidate.outcome == "error":
            return None
        if not self.candidate.ok:
            return False
        if self.by_label:
            return self.candidate.label == self.reference.label
        value = self.primary.get("cand_vs_ref")
        return None if value is None else value >= self.threshold

    def answer(self, role: str) -> Answer:
        return self.candidate if role == "candidate" else self.reference

    def correct(self, role: str) -> bool | None:
        """Correct against gold; None without gold or when the call failed."""
        answer = self.answer(role)
        if self.sample.label is None or answer.outcome == "error":
            return None
        if not answer.ok:
            return False
        if self.by_label:
            return answer.label == self.sample.label
        value = self.primary.get("cand_vs_gold" if role == "candidate" else "ref_vs_gold")
        return None if value is None else value >= self.threshold

    @property
    def gold_capable(self) -> bool:
        return self.sample.label is not None and (self.by_label
                                                  or self.primary.get("ref_vs_gold") is not None)


def scoring_mode(rows: list[ScoredSample]) -> Mode:
    return "gold" if rows and all(row.gold_capable for row in rows) else "reference"


def answer_value(answer: Answer, kind: str) -> Any:
    """What a per-sample metric compares: the label (classification), the object (extraction), the text."""
    if kind == "classification":
        return answer.label
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


def is_custom(metric: str) -> bool:
    """Not a built-in per-sample metric (nor label match): a function named in the task or an entry point."""
    return metric != "label" and metric not in PRIMARY_METRICS


def primary_metric(task: TaskSpec) -> tuple[str, float]:
    """The decision's per-sample metric and the score at which a sample counts as right."""
    metric = task.decision.metric or DEFAULT_PRIMARY.get(task.output.kind, "label")
    entry = task.metric_entry(metric)
    own = entry[1].threshold if entry else None
    default = DEFAULT_CUSTOM_THRESHOLD if is_custom(metric) else DEFAULT_THRESHOLD.get(metric, 1.0)
    threshold = next(value for value in (task.decision.threshold, own, default) if value is not None)
    return metric, threshold


def decision_measure(task: TaskSpec) -> str | None:
    """How a decision on a custom metric says what a right sample is (None for the built-in metrics)."""
    metric, threshold = primary_metric(task)
    return f"{metric} ≥ {threshold:g}" if is_custom(metric) else None


def pair_scorer(metric: str, task: TaskSpec) -> Scorer:
    """The per-sample scorer of ``metric`` for ``task``: a built-in one, or the task's custom function."""
    kind = task.output.kind
    if is_custom(metric):
        custom = custom_metric(task, metric, set(PRIMARY_METRICS))
        if custom is None:
            raise task.error("decision.metric", f"no metric '{metric}'")
        return custom.score
    return lambda pred, truth, sample, against: pair_score(metric, pred, truth, kind)


def score_sample(sample: Sample, candidate: Answer, reference: Answer, task: TaskSpec,
                 judge: bool | None = None, scorer: Scorer | None = None) -> ScoredSample:
    """The per-sample comparison the decision and routing use (``scorer``: the decision metric's, when the
    caller has resolved it already)."""
    kind = task.output.kind
    metric, threshold = primary_metric(task)
    if metric == "label":
        return ScoredSample(sample=sample, candidate=candidate, reference=reference)
    primary: dict[str, float | None] = {}
    if metric == "judge":
        primary["cand_vs_ref"] = None if judge is None else float(judge)
    else:
        score = scorer or pair_scorer(metric, task)
        cand = answer_value(candidate, kind) if candidate.ok else None
        ref = answer_value(reference, kind) if reference.ok else None
        if cand is not None and ref is not None:
            primary["cand_vs_ref"] = score(cand, ref, sample, "reference")
        if sample.label is not None:
            primary["cand_vs_gold"] = score(cand, sample.label, sample, "gold") if cand is not None else 0.0
            primary["ref_vs_gold"] = score(ref, sample.label, sample, "gold") if ref is not None else 0.0
    return ScoredSample(sample=sample, candidate=candidate, reference=reference, kind=kind, primary=primary,
                        threshold=threshold, judge=judge, metric=metric)


@dataclass(frozen=True, slots=True)  # slots: one per sample or call, all kept (issue 20)
class SampleResult:
    """The join of the pipeline's stages for one sample: its input, each role's call (from the API or
    the cache), the parsed answers and the comparison."""

    sample: Sample
    calls: Mapping[str, CallResult]
    answers: Mapping[str, Answer]
    scored: ScoredSample

    def usage(self, role: str) -> Usage:
        response = self.calls[role].response
        return response.usage if response is not None else Usage()


def score_calls(task: TaskSpec, samples: list[Sample], calls: list[CallResult],
                judged: Mapping[str, bool | None] | None = None,
                outputs: Mapping[str, OutputSpec] | None = None) -> list[SampleResult]:
    """Join each sample to its calls (replicate 0 of each role), parse the answers and score them.
    ``outputs``: a role's own answer spec (recorded answers may lack confidence or escalate)."""
    by_sample: dict[str, dict[str, CallResult]] = {}
    for call in calls:
        if call.request.replicate == 0 and call.request.role in ROLES:
            by_sample.setdefault(call.request.sample_id, {})[call.request.role] = call
    results = []
    metric, _ = primary_metric(task)
    scorer = pair_scorer(metric, task) if metric not in ("label", "judge") else None
    for sample in samples:
        sample_calls = by_sample[sample.id]
        answers = {role: parse_answer(sample_calls[role].response, sample_calls[role].error,
                                      (outputs or {}).get(role, task.output)) for role in ROLES}
        scored = score_sample(sample, answers["candidate"], answers["reference"], task,
                              judge=(judged or {}).get(sample.id), scorer=scorer)
        results.append(SampleResult(sample=sample, calls=sample_calls, answers=answers, scored=scored))
    return results
