"""The validity gate: whether a run's evidence can support any verdict at all.

The decision test is exact, but it is only as good as its inputs. A reference whose answers are mostly
invalid, a reference no better than guessing, answers cut off by ``max_tokens`` (thinking counts toward
it), or a simulator answering a domain it never learned (or rows it trained on) all produce confident,
wrong verdicts — and truncation in particular biases toward "the cheap model is good enough". Such a run
gets the verdict ``INVALID-RUN`` with its reasons and fixes, never GO/NO-GO/INCONCLUSIVE.

The candidate's own invalid answers are a real failure of the candidate, not of the evidence: they count
as wrong, and are summarised by reason.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from evalkit._typed import Typed
from evalkit.scoring.samples import ScoredSample
from evalkit.spec import ValiditySpec
from evalkit.stats.decision import clopper_pearson_interval

#: Checks, in the order they are reported.
CHECKS = (
    "reference_invalid",
    "truncated",
    "reference_at_chance",
    "reference_degenerate",
    "simulator_no_corpus",
    "simulator_leak",
)


class Problem(Typed):
    """One reason the run cannot support a verdict, and what to do about it."""

    check: str
    role: str | None
    message: str
    fix: str
    value: float
    bound: float


class Truncation(Typed):
    """Answers one model's calls lost to ``max_tokens``, and the output sizes that were measured."""

    role: str
    model: str
    answers: int
    truncated: int
    after_thinking: int  # cut off with a thinking block and no (complete) answer
    max_tokens: int | None
    output_p50: float | None
    output_p99: float | None

    @property
    def share(self) -> float:
        return self.truncated / self.answers if self.answers else 0.0


class Validity(Typed):
    valid: bool
    problems: list[Problem] = []
    truncation: list[Truncation] = []
    #: The candidate's invalid answers by reason code (they count as wrong; shown, never hidden).
    candidate_invalid: dict[str, int] = {}
    reference_invalid: dict[str, int] = {}

    @property
    def summary(self) -> str:
        return "; ".join(problem.message for problem in self.problems)


def _quantile(values: Sequence[int], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)])


def truncation_of(
    role: str, model: str, outputs: Sequence[tuple[str | None, int, bool]], max_tokens: int | None
) -> Truncation:
    """``outputs``: (stop_reason, output tokens, had a thinking block) of each answered call."""
    truncated = [(tokens, thought) for stop, tokens, thought in outputs if stop == "max_tokens"]
    complete = [tokens for stop, tokens, _ in outputs if stop != "max_tokens"]
    return Truncation(
        role=role,
        model=model,
        answers=len(outputs),
        truncated=len(truncated),
        after_thinking=sum(1 for _, thought in truncated if thought),
        max_tokens=max_tokens,
        output_p50=_quantile(complete, 0.5),
        output_p99=_quantile(complete, 0.99),
    )


def _truncation_fix(t: Truncation) -> str:
    budget = f"models.{t.role}.max_tokens" if t.role in ("candidate", "reference") else "models.max_tokens"
    if t.output_p99 is not None and t.truncated < t.answers:
        target = max(int(math.ceil(1.25 * t.output_p99 / 50) * 50), 2 * (t.max_tokens or 0))
        advice = (
            f"raise {budget} to ~{target} (p99 of the complete answers' output tokens was {t.output_p99:.0f})"
        )
    else:
        advice = f"raise {budget} well above {t.max_tokens} (every answer was cut off)"
    if t.after_thinking:
        advice += (
            f", or think less: set effort: low (or thinking: disabled) for {t.model} — "
            f"{t.after_thinking} answers ran out of tokens after a thinking block"
        )
    return advice


def assess(
    rows: Sequence[ScoredSample],
    *,
    bounds: ValiditySpec,
    truncation: Sequence[Truncation],
    labels: Sequence[str],
    gold: bool,
    simulated: bool,
    simulator_corpus: str | None = None,
    missing_labels: Sequence[str] = (),
    leaked: int = 0,
) -> Validity:
    """Check everything that makes a verdict meaningless. ``labels`` is empty for extraction and text tasks;
    the simulator facts apply only when ``simulated``."""
    problems: list[Problem] = []
    n = len(rows)
    reference_reasons = Counter(
        row.reference.code or row.reference.outcome for row in rows if not row.reference.ok
    )
    candidate_reasons = Counter(
        row.candidate.code or row.candidate.outcome for row in rows if not row.candidate.ok
    )
    bad_reference = sum(reference_reasons.values())
    if n and bad_reference / n > bounds.max_reference_invalid:
        top = ", ".join(f"{reason} ({count})" for reason, count in reference_reasons.most_common(3))
        problems.append(
            Problem(
                check="reference_invalid",
                role="reference",
                value=bad_reference / n,
                bound=bounds.max_reference_invalid,
                message=f"{bad_reference} of {n} reference answers ({100 * bad_reference / n:.1f}%) are "
                        "invalid or "
                f"failed ({top}); the truth the candidate is measured against is broken",
                fix="fix what the reasons name (answer format, a recorded log's shape, max_tokens) before "
                    "deciding",
            )
        )
    for t in truncation:
        if t.answers and t.share > bounds.max_truncated:
            problems.append(
                Problem(
                    check="truncated",
                    role=t.role,
                    value=t.share,
                    bound=bounds.max_truncated,
                    message=f"{t.truncated} of {t.answers} {t.role} answers ({100 * t.share:.1f}%, "
                            f"{t.model}) "
                            ""
                            "were cut "
                    f"off by max_tokens = {t.max_tokens}; truncation makes the models look alike",
                    fix=_truncation_fix(t),
                )
            )
    answered = [row for row in rows if row.reference.outcome != "error"]
    if gold and labels and answered:
        right = sum(1 for row in answered if row.correct("reference"))
        counts = Counter(str(row.sample.label) for row in answered)
        chance = max(1 / len(labels), max(counts.values()) / len(answered))
        low, _ = clopper_pearson_interval(right, len(answered), confidence=0.90)
        if low <= chance:
            problems.append(
                Problem(
                    check="reference_at_chance",
                    role="reference",
                    value=right / len(answered),
                    bound=chance,
                    message=f"the reference is right on {100 * right / len(answered):.1f}% of "
                            f"{len(answered)} "
                            ""
                            "samples, "
                    f"not shown better than chance ({100 * chance:.1f}%: always answering the most common "
                    "label); it cannot serve as the standard",
                    fix="check the reference model, its prompt and the gold labels (or their mapping to "
                        "output.labels)",
                )
            )
    if not gold and labels:
        given = Counter(row.reference.label for row in rows if row.reference.ok)
        total = sum(given.values())
        if total >= 20:
            label, count = given.most_common(1)[0]
            if count / total >= bounds.max_reference_top_label:
                problems.append(
                    Problem(
                        check="reference_degenerate",
                        role="reference",
                        value=count / total,
                        bound=bounds.max_reference_top_label,
                        message=f"the reference answered '{label}' to {count} of {total} samples "
                        f"({100 * count / total:.1f}%): a degenerate truth makes agreement meaningless",
                        fix="check the reference's prompt and labels, or add gold labels "
                            "(dataset.label_column)",
                    )
                )
    if simulated:
        problems += simulator_problems(
            labels=labels,
            corpus=simulator_corpus,
            missing_labels=missing_labels,
            leaked=leaked,
            evaluated=n,
            bounds=bounds,
        )
    return Validity(
        valid=not problems,
        problems=problems,
        truncation=list(truncation),
        candidate_invalid=dict(candidate_reasons.most_common()),
        reference_invalid=dict(reference_reasons.most_common()),
    )


def simulator_problems(
    *,
    labels: Sequence[str],
    corpus: str | None,
    missing_labels: Sequence[str],
    leaked: int,
    evaluated: int,
    bounds: ValiditySpec,
) -> list[Problem]:
    """What makes simulated answers meaningless for this task (checkable before any request is sent)."""
    problems: list[Problem] = []
    n = evaluated
    if labels and corpus is None:
        problems.append(
            Problem(
                check="simulator_no_corpus",
                role=None,
                value=1.0,
                bound=0.0,
                message=f"the simulator has no corpus for this task's labels ({', '.join(list(labels)[:6])}"
                f"{', …' if len(labels) > 6 else ''}): its answers are guesses by word overlap",
                fix="add a [[simulator.corpora]] entry with labelled training rows of this domain to "
                    "evalkit.toml "
                "(never the rows being evaluated), or run online",
            )
        )
    elif missing_labels:
        problems.append(
            Problem(
                check="simulator_no_corpus",
                role=None,
                value=len(missing_labels) / max(len(labels), 1),
                bound=0.0,
                message=f"the simulator's corpus ({corpus}) never saw the labels "
                f"{', '.join(missing_labels[:6])}: it cannot answer them as a trained model would",
                fix="add training rows for those labels to the simulator's corpus",
            )
        )
    if n and leaked / n > bounds.max_leaked:
        problems.append(
            Problem(
                check="simulator_leak",
                role=None,
                value=leaked / n,
                bound=bounds.max_leaked,
                message=f"{leaked} of {n} evaluated rows are also the simulator's training rows: its answers "
                        "on them "
                "are memorised, not predicted",
                fix="point [[simulator.corpora]] at rows that are not evaluated (e.g. where: {split: train} "
                    "while the "
                "task uses split: test)",
            )
        )
    return problems
