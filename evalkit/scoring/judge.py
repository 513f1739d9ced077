"""The reference as judge: it is asked whether the candidate's answer is equivalent to its own.

Used by extraction and text tasks whose decision metric (or metric list) names ``judge``. The request goes
through the same cache and batches as every other; the verdict is read from the judge's structured answer.
"""

from __future__ import annotations

import json
from typing import Any

from evalkit.datasets import Sample
from evalkit.providers.base import ModelResponse
from evalkit.scoring.answers import Answer
from evalkit.scoring.samples import answer_value
from evalkit.spec import TaskSpec

#: The smallest output budget the judge gets (its JSON verdict with a one-sentence reason).
JUDGE_MIN_TOKENS = 300
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
    # The judge is the reference, called as the reference is (effort, thinking), with room for its reason.
    settings = task.models.role("reference")
    output_config: dict[str, Any] = {"format": {"type": "json_schema", "schema": JUDGE_SCHEMA}}
    if settings.effort is not None:
        output_config["effort"] = settings.effort
    params: dict[str, Any] = {
        "model": settings.model,
        "max_tokens": max(JUDGE_MIN_TOKENS, settings.max_tokens),
        "system": [{"type": "text", "text": JUDGE_SYSTEM}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": user}]}],
        "output_config": output_config,
    }
    if settings.thinking != "default":
        params["thinking"] = {"type": settings.thinking}
    return params


def parse_judge(response: ModelResponse | None) -> bool | None:
    """The judge's verdict; None when it failed, was cut off (``max_tokens``) or answered off-schema."""
    if response is None or response.stop_reason != "end_turn" or not response.text:
        return None
    response_text = response.text
    try:
        data = json.loads(response_text)
    except json.JSONDecodeError:
        return None
    value = data.get("equivalent") if isinstance(data, dict) else None
    return value if isinstance(value, bool) else None
