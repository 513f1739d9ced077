"""``routing.json`` and the runtime router for production code: candidate first, reference when unsure.

It does what the seed's ``classify_with_routing`` does, with the threshold calibrated by ``evalkit tune``
(``routing.json``) and the exact prompts that were evaluated (the task file)::

    from evalkit import Router
    router = Router.from_files("reports/triage/routing.json", "tasks/triage.yaml")
    routed = router.route("I was charged twice this month")   # RoutedAnswer
    routed.answer.label, routed.escalated, routed.reason

The escalation rule is :func:`evalkit.routing.rule.should_escalate`, the one the threshold was tuned
with. Pass your own ``anthropic.AsyncAnthropic`` client, or let the router make one from the environment;
requests go through evalkit's Anthropic adapter, the same code path as an evaluation.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import ValidationError

from evalkit._typed import Typed
from evalkit.datasets import Sample
from evalkit.errors import ConfigError, ProviderError
from evalkit.prompts.render import PromptRenderer, build_request
from evalkit.providers.anthropic import AnthropicProvider, default_client
from evalkit.routing.analysis import CrossFitted, RoutingAnalysis, RoutingCosts, SweepPoint
from evalkit.routing.rule import should_escalate
from evalkit.scoring.answers import Answer, parse_answer
from evalkit.spec import TaskSpec, load_task

ROUTING_SCHEMA: Final = 1


class RoutingEvidence(Typed):
    """Which run the threshold was tuned on."""

    run_from_cache: bool
    samples: int
    dataset_hash: str
    sample_hash: str
    spec_hash: str
    system_prompt_hash: str
    simulated: bool
    pricing_as_of: str
    created_at: str


class RoutingFile(Typed):
    """What ``routing.json`` holds: the threshold to ship and the evidence behind it."""

    schema_version: Literal[1] = ROUTING_SCHEMA
    task: str
    candidate: str
    reference: str
    #: The candidate configuration it was tuned for (tasks with ``models.candidates``); None: the only one.
    configuration: str | None = None
    threshold: float | None
    escalate_when: str = "confidence < threshold, or escalate flag set, or invalid candidate answer"
    honour_escalate_flag: bool
    objective: str
    objective_kind: str
    target_loss: float
    delta: float
    guarantee: str
    expected: CrossFitted
    in_sample: SweepPoint | None
    always_reference_accuracy: float
    costs: RoutingCosts
    evidence: RoutingEvidence


def routing_file(analysis: RoutingAnalysis, *, task_name: str, candidate: str, reference: str,
                 evidence: RoutingEvidence, configuration: str | None = None) -> RoutingFile:
    if not analysis.available or analysis.options is None or analysis.cross_fitted is None \
            or analysis.costs is None or analysis.always_reference_accuracy is None:
        raise ValueError(f"no routing analysis to write: {analysis.why}")
    return RoutingFile(
        task=task_name, candidate=candidate, reference=reference, configuration=configuration,
        threshold=analysis.chosen.t if analysis.chosen else None,
        honour_escalate_flag=analysis.options.honour_escalate_flag, objective=str(analysis.objective),
        objective_kind=analysis.options.objective, target_loss=analysis.options.target_loss,
        delta=analysis.options.delta, guarantee=str(analysis.guarantee), expected=analysis.cross_fitted,
        in_sample=analysis.chosen, always_reference_accuracy=analysis.always_reference_accuracy,
        costs=analysis.costs, evidence=evidence)


def load_routing_file(path: str | Path) -> RoutingFile:
    try:
        return RoutingFile.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read routing file {path}: {exc.strerror}",
                          hint="create it with `evalkit tune TASK.yaml`") from None
    except ValidationError as exc:
        raise ConfigError(f"{path} is not a routing.json evalkit can use: {exc.errors()[0]['msg']} "
                          f"at {'.'.join(map(str, exc.errors()[0]['loc']))}",
                          hint="re-create it with `evalkit tune TASK.yaml`") from None


@dataclass(frozen=True)
class RoutedAnswer:
    answer: Answer  # the answer to use
    escalated: bool
    reason: str
    candidate: Answer
    reference: Answer | None
    model: str


class Router:
    """Routes live requests: the candidate first, the reference when the escalation rule says so."""

    def __init__(self, task: TaskSpec, *, threshold: float, honour_escalate_flag: bool = True,
                 client: Any | None = None) -> None:
        self.threshold = threshold
        self.honour_flag = honour_escalate_flag
        self.task = task
        self.renderers = {role: PromptRenderer(task, role) for role in ("candidate", "reference")}
        self._client = client
        self._provider: AnthropicProvider | None = None

    @classmethod
    def from_routing(cls, routing: RoutingFile, task: TaskSpec, client: Any | None = None) -> Router:
        """The router ``routing.json`` describes, for the task it was tuned on."""
        if routing.threshold is None:
            raise ConfigError("routing.json has no threshold: the tuning run could not certify one",
                              hint="re-run `evalkit tune` with a looser --target-loss or more samples")
        if routing.configuration is not None:
            count = len(task.models.configurations())
            names = [task.configuration(i).configuration_name for i in range(count)]
            if routing.configuration not in names:
                raise ConfigError(f"routing.json was tuned for the configuration {routing.configuration!r}, "
                                  f"which the task does not have (it has {', '.join(names)})",
                                  hint="re-run `evalkit tune` for this task")
            task = task.configuration(names.index(routing.configuration))
        candidate, reference = task.models.candidate.model, task.models.reference.model
        if routing.candidate != candidate or routing.reference != reference:
            raise ConfigError(
                f"routing.json was tuned for {routing.candidate} → {routing.reference}, but the task "
                f"uses {task.models.candidate.model} → {task.models.reference.model}",
                hint="re-run `evalkit run` and `evalkit tune` for this task")
        return cls(task, threshold=routing.threshold, honour_escalate_flag=routing.honour_escalate_flag,
                   client=client)

    @classmethod
    def from_files(cls, routing_json: str | Path, task_yaml: str | Path, client: Any | None = None) -> Router:
        return cls.from_routing(load_routing_file(routing_json), load_task(task_yaml), client)

    @property
    def provider(self) -> AnthropicProvider:
        if self._provider is None:
            client = self._client if self._client is not None else default_client()
            self._provider = AnthropicProvider(client, endpoint=str(client.base_url))
        return self._provider

    def should_escalate(self, answer: Answer) -> tuple[bool, str]:
        return should_escalate(answer, self.threshold, honour_flag=self.honour_flag)

    async def _ask(self, role: str, sample: Sample) -> Answer:
        request = build_request(self.task, role, sample, self.renderers[role].render(sample))
        try:
            response = await self.provider.generate(request)
        except ProviderError as error:
            return parse_answer(None, error, self.task.output)
        return parse_answer(response, None, self.task.output)

    async def aroute(self, text: str, **fields: Any) -> RoutedAnswer:
        """Route one request. ``fields`` fill the task's other template variables (e.g. channel)."""
        values = {self.task.dataset.text_column: text, **fields}
        sample = Sample(id="live", text=text, label=None, fields=values, input_hash="")
        candidate = await self._ask("candidate", sample)
        escalate, reason = self.should_escalate(candidate)
        if not escalate:
            return RoutedAnswer(candidate, False, reason, candidate, None, self.task.models.candidate.model)
        reference = await self._ask("reference", sample)
        return RoutedAnswer(reference, True, reason, candidate, reference, self.task.models.reference.model)

    def route(self, text: str, **fields: Any) -> RoutedAnswer:
        """Synchronous :meth:`aroute` (do not call from inside a running event loop)."""
        return asyncio.run(self.aroute(text, **fields))
