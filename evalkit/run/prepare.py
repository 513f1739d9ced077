"""Everything a run needs before its first request: the validated task, the sample and the requests."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evalkit.config import PricingTable, Settings, SimCorpus
from evalkit.cost.pricelist import is_priced, price_age, sdk_model_ids, suggest_model
from evalkit.datasets import SampleSet, load_samples
from evalkit.errors import SpecError, UsageError
from evalkit.prompts.lint import Finding, lint_templates, schema_issues
from evalkit.prompts.prompt_caching import CachePlan, plan_caching
from evalkit.prompts.render import ModelRequest, PromptRenderer, build_request, output_schema
from evalkit.providers.execute import CallResult
from evalkit.run.reflog import LoggedAnswers, load_log
from evalkit.scoring.metrics import check_metric_names, try_custom_metrics
from evalkit.scoring.samples import ROLES
from evalkit.sim.coverage import SimulatorFacts
from evalkit.spec import OutputSpec, TaskSpec
from evalkit.stats.validity import Problem, simulator_problems

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """The validated task, its sample, the rendered requests and the caching plan, before any request."""

    task: TaskSpec
    settings: Settings
    samples: SampleSet
    renderers: dict[str, PromptRenderer]  # per role: a candidate configuration may have its own prompt
    requests: list[ModelRequest]
    cache_plans: dict[str, CachePlan]
    findings: list[Finding]
    #: Recorded answers standing in for a role's calls (``models.<role>_log``).
    logs: dict[str, LoggedAnswers] = field(default_factory=dict)
    #: The run calls a model (it has requests), still known after :meth:`release_requests`.
    calls_models: bool = field(init=False)

    def __post_init__(self) -> None:
        self.calls_models = bool(self.requests)

    def release_requests(self) -> None:
        """Let the rendered requests go once every call is made: the calls keep what the record reads
        (:meth:`ModelRequest.released`), and the requests, ~1.3 KB a sample, were otherwise held through
        scoring to the run's memory high (issue 22)."""
        self.requests = []

    @property
    def renderer(self) -> PromptRenderer:
        """The candidate's renderer (the prompt the router would send the cheap model)."""
        return self.renderers["candidate"]

    @property
    def logged(self) -> list[CallResult]:
        return [call for log in self.logs.values() for call in log.calls]

    @property
    def outputs(self) -> dict[str, OutputSpec]:
        """Each role's answer spec: a log without confidence or escalate makes them optional there."""
        return {role: self.logs[role].output if role in self.logs else self.task.output for role in ROLES}

    @property
    def noise_requests(self) -> list[ModelRequest]:
        """The reference asked a second time on the first N samples, to measure its self-agreement."""
        count = min(self.task.decision.reference_noise, len(self.samples.samples))
        chosen = {s.id for s in self.samples.samples[:count]}
        # metadata.user_id marks the repeat as a separate request (the real API samples every call anew;
        # the simulator draws again only when asked like this, so retries and re-sends stay reproducible).
        return [replace(r, replicate=1, params={**r.params, "metadata": {"user_id": "evalkit-replicate-1"}})
                for r in self.requests if r.role == "reference" and r.sample_id in chosen]


def prepare(task: TaskSpec, settings: Settings, *, sample_size: int | None = None, offline: bool = True,
            mode: str = "batch", samples: SampleSet | None = None) -> Prepared:
    """Load and check everything that can be checked without calling a model (``samples``: already
    loaded, e.g. shared by the candidate configurations of one run)."""
    check_metric_names(task)
    called = [role for role in ROLES if task.models.log(role) is None]
    judging = task.models.reference_log is not None and wants_judge(task)  # the reference still judges
    check_model_ids(task, settings.pricing, [*called, *(["reference"] if judging else [])])
    if sample_size is not None and sample_size < 1:
        raise UsageError(f"--sample-size must be at least 1, got {sample_size}")
    refused = schema_issues(task)
    if refused:  # the API would answer 400 — in batch mode only after the whole batch has run
        raise SpecError(task.task_file, refused)
    if samples is None:
        samples = load_samples(task, cache_dir=settings.cache_dir, offline=offline, size=sample_size)
    try_custom_metrics(task, samples.samples)
    findings = lint_templates(task)
    reference = PromptRenderer(task, "reference", settings.include_dirs)
    candidate = (reference if task.models.candidate.prompt is None
                 else PromptRenderer(task, "candidate", settings.include_dirs))
    renderers = {"reference": reference, "candidate": candidate}
    schema = output_schema(task.output) if task.output.structured else None
    plans = plan_caching(task, {role: renderer.system for role, renderer in renderers.items()}, schema,
                         mode=mode)
    logs = {role: load_log(task, role, samples) for role in ROLES if task.models.log(role) is not None}
    if "reference" in logs and task.decision.reference_noise:
        raise task.error("decision.reference_noise", "cannot measure reference noise from a log of responses",
                         hint="remove decision.reference_noise, or models.reference_log to call the "
                              "reference")
    requests: list[ModelRequest] = []
    shared = renderers["candidate"] is reference
    for sample in samples.samples:
        prompt = reference.render(sample)
        built: dict[str | None, list[dict[str, Any]]] = {}  # messages of the shared prompt, by cache TTL
        for role in called:
            own = prompt if role == "reference" or shared else renderers[role].render(sample)
            ttl = plans[role].ttl
            request = build_request(task, role, sample, own, cache_ttl=ttl,
                                    messages=built.get(ttl) if own is prompt else None)
            if own is prompt:
                built.setdefault(ttl, request.params["messages"])
            requests.append(request)
    return Prepared(task=task, settings=settings, samples=samples, renderers=renderers, requests=requests,
                    cache_plans=plans, findings=findings, logs=logs)


def check_model_ids(task: TaskSpec, pricing: PricingTable, roles: list[str]) -> None:
    """Every model the run calls has a price — no price, no run: never a silent $0. A mistyped id is a
    located task error with "did you mean", not a pricing error."""
    age = price_age(pricing)
    log.info("prices as of %s (%s days old; source: %s)", pricing.as_of, age.days, pricing.source)
    for role in dict.fromkeys(roles):
        model = task.models.role(role).model
        if is_priced(model, pricing):
            continue
        close = [name for name in suggest_model(model, pricing) if name != model]
        if close and model not in sdk_model_ids():
            also = f" (or {', '.join(repr(name) for name in close[1:])})" if close[1:] else ""
            raise task.error(f"models.{role}.model",
                             f"unknown model id '{model}': no price for model '{model}'",
                             hint=f"did you mean '{close[0]}'{also}? `evalkit prices` lists the models "
                                  "with a price; a model newer than this evalkit needs one in evalkit.toml "
                                  f'[pricing.models."{model}"]')
        pricing.price_for(model)  # raises PricingError: how to add the price


def wants_judge(task: TaskSpec) -> bool:
    judged = task.decision.metric == "judge" or "judge" in task.metric_names
    return task.output.kind != "classification" and judged


def simulator_preflight(prepared: Prepared) -> list[Problem]:
    """What would make an offline (simulated) run of this sample INVALID-RUN, known before any request:
    a label set no simulator corpus covers, and evaluated rows the simulator trained on."""
    task = prepared.task
    labels = task.output.label_names if task.output.kind == "classification" else []
    texts = [sample.text for sample in prepared.samples.samples]
    facts = SimulatorFacts.of(prepared.settings, labels, texts)
    return simulator_problems(labels=labels, corpus=facts.corpus, missing_labels=facts.missing_labels,
                              leaked=facts.leaked, evaluated=len(texts), bounds=task.decision.validity)


def with_task_corpus(task: TaskSpec, settings: Settings) -> Settings:
    """Settings whose simulator also learns from the task's own training rows (``simulator.train``)."""
    train = task.simulator.train
    if train is None:
        return settings
    if task.dataset.path is None or not task.dataset.label_column:
        raise task.error("simulator.train", "the simulator can learn only from a local dataset with labels",
                         hint="set dataset.path and dataset.label_column, or add a [[simulator.corpora]] "
                              "entry")
    path = Path(task.dataset.path)
    corpus = SimCorpus(path=str(path if path.is_absolute() else (task.base_dir / path).resolve()),
                       text_column=task.dataset.text_column, label_column=task.dataset.label_column,
                       where=dict(train.where))
    simulator = settings.simulator.model_copy(update={"corpora": [*settings.simulator.corpora, corpus]})
    return settings.model_copy(update={"simulator": simulator})
