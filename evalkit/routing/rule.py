"""The escalation rule of the two-stage router — one definition for tuning, the gate and live routing.

The candidate's answer is kept when it is valid, it gave a confidence, it did not ask to escalate (unless
the flag is ignored) and its confidence, rounded to the threshold grid's two decimals, is at least the
threshold. Otherwise the request goes to the reference.
"""

from __future__ import annotations

import numpy as np

from evalkit.scoring.answers import Answer


def grid_confidence(confidence: float) -> float:
    """A confidence on the 2-decimal grid thresholds are chosen from (numpy's rounding, as the sweep)."""
    return float(np.round(confidence, 2))


def forced_escalation(answer: Answer, *, honour_flag: bool = True) -> str | None:
    """Why this answer escalates at every threshold, or None when its confidence decides."""
    if not answer.ok:
        return f"candidate answer invalid: {answer.reason}"
    if honour_flag and answer.escalate:
        return "candidate asked to escalate"
    if answer.confidence is None:
        return "candidate gave no confidence"
    return None


def should_escalate(answer: Answer, threshold: float, *, honour_flag: bool = True) -> tuple[bool, str]:
    """(escalate?, why) for one candidate answer at ``threshold``."""
    forced = forced_escalation(answer, honour_flag=honour_flag)
    if forced is not None:
        return True, forced
    confidence = grid_confidence(answer.confidence)  # type: ignore[arg-type]
    if confidence < threshold:
        return True, f"confidence {confidence:.2f} < threshold {threshold:.2f}"
    return False, f"confidence {confidence:.2f} ≥ threshold {threshold:.2f}"
