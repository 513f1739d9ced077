"""The reference as judge: it is asked whether the candidate's answer is equivalent to its own.

Used by extraction and text tasks whose decision metric (or metric list) names ``judge``. The request goes
through the same cache and batches as every other; the verdict is read from the judge's structured answer.
"""

from __future__ import annotations

import json
from typing import Any

from evalkit.datasets import Sample
from evalkit.scoring.answers import Answer
from evalkit.scoring.samples import answer_value
from evalkit.spec import TaskSpec

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
