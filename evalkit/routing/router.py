"""A small runtime router for production code: candidate first, reference when it is unsure.

It does what the seed's ``classify_with_routing`` does, with the threshold calibrated by ``evalkit tune``
(``routing.json``) and the exact prompts that were evaluated (the task file)::

    from evalkit.routing.router import Router
    router = Router.from_files("reports/triage/routing.json", "tasks/triage.yaml")
    routed = router.route("I was charged twice this month")   # RoutedAnswer
    routed.answer.label, routed.escalated, routed.reason

The candidate's answer is used when it is valid, its confidence is at least the threshold and (unless
routing.json says otherwise) it did not set its escalate flag; otherwise the reference answers.
Pass your own ``anthropic.AsyncAnthropic`` client, or let the router make one from the environment.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.datasets import Sample
from evalkit.errors import ConfigError
from evalkit.scoring.answers import Answer, parse_answer
from evalkit.prompts.render import PromptRenderer, build_request
from evalkit.spec import TaskSpec, load_task


@dataclass(frozen=True)
class RoutedAnswer:
    answer: Answer  # the answer to use
    escalated: bool
    reason: str
    candidate: Answer
    reference: Answer | None
    model: str


class Router:
    def __init__(self, routing: dict[str, Any], task: TaskSpec, client: Any | None = None) -> None:
        if routing.get("threshold") is None:
            raise ConfigError("routing.json has no threshold: the tuning run could not certify one",
                              hint="re-run `evalkit tune` with a looser --target-loss or more samples")
        if routing.get("candidate") != task.models.candidate or routing.get("reference") != task.models.reference:
            raise ConfigError(
                f"routing.json was tuned for {routing.get('candidate')} → {routing.get('reference')}, but the task "
                f"uses {task.models.candidate} → {task.models.reference}",
                hint="re-run `evalkit run` and `evalkit tune` for this task")
        self.threshold = float(routing["threshold"])
        self.honour_flag = bool(routing.get("honour_escalate_flag", True))
        self.task = task
        self.renderer = PromptRenderer(task)
        self._client = client

    @classmethod
    def from_files(cls, routing_json: str | Path, task_yaml: str | Path, client: Any | None = None) -> Router:
        try:
            routing = json.loads(Path(routing_json).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read routing file {routing_json}: {exc}",
                              hint="create it with `evalkit tune TASK.yaml`") from None
        return cls(routing, load_task(task_yaml), client)

    @property
    def client(self) -> Any:
        if self._client is None:
            import anthropic  # noqa: PLC0415

            self._client = anthropic.AsyncAnthropic()
        return self._client

    def should_escalate(self, answer: Answer) -> tuple[bool, str]:
        if not answer.ok:
            return True, f"candidate answer invalid: {answer.reason}"
        if self.honour_flag and answer.escalate:
            return True, "candidate asked to escalate"
        if answer.confidence is None:
            return True, "candidate gave no confidence"
        if answer.confidence < self.threshold:
            return True, f"confidence {answer.confidence:.2f} < threshold {self.threshold:.2f}"
        return False, f"confidence {answer.confidence:.2f} ≥ threshold {self.threshold:.2f}"

    async def _ask(self, role: str, sample: Sample) -> Answer:
        import anthropic  # noqa: PLC0415

        from evalkit.providers.anthropic import map_sdk_error  # noqa: PLC0415
        from evalkit.providers.base import ModelResponse  # noqa: PLC0415

        request = build_request(self.task, role, sample, self.renderer.render(sample))
        try:
            raw = await self.client.messages.with_raw_response.create(**request.params)
            response = ModelResponse(message=raw.http_response.json(), request_id=raw.request_id)
        except anthropic.APIError as exc:
            return parse_answer(None, map_sdk_error(exc, model=request.model), self.task.output)
        return parse_answer(response, None, self.task.output)

    async def aroute(self, text: str, **fields: Any) -> RoutedAnswer:
        """Route one request. ``fields`` fill the task's other template variables (e.g. channel)."""
        values = {self.task.dataset.text_column: text, **fields}
        sample = Sample(id="live", text=text, label=None, fields=values, input_hash="")
        candidate = await self._ask("candidate", sample)
        escalate, reason = self.should_escalate(candidate)
        if not escalate:
            return RoutedAnswer(candidate, False, reason, candidate, None, self.task.models.candidate)
        reference = await self._ask("reference", sample)
        return RoutedAnswer(reference, True, reason, candidate, reference, self.task.models.reference)

    def route(self, text: str, **fields: Any) -> RoutedAnswer:
        """Synchronous :meth:`aroute` (do not call from inside a running event loop)."""
        return asyncio.run(self.aroute(text, **fields))
