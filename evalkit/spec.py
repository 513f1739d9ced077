"""Task files (``tasks/*.yaml``): typed, strict, and every problem located by file, line and key path.

A task names its dataset, how to sample it, the prompt (a static system part and a per-sample user part),
the answer schema, the two models, the metrics and the decision margin. YAML is loaded with PyYAML's
safe loader only; no tags, no code.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from evalkit._hashing import digest
from evalkit.config import Platform
from evalkit.errors import SpecError, SpecIssue

Scalar = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class DatasetSpec(_Strict):
    """Where the samples come from and which columns mean what."""

    path: str | None = Field(default=None, description="A local .jsonl/.json/.csv/.tsv/.parquet/.arrow file "
                                                       "or "
                             "a datasets.save_to_disk folder, relative to the task file.")
    format: Literal["jsonl", "json", "csv", "tsv", "parquet", "arrow", "disk"] | None = Field(
        default=None, description="The file's format when its suffix does not say it.")
    delimiter: str | None = Field(default=None, min_length=1, max_length=1,
                                  description="CSV/TSV field delimiter (default: tab for .tsv, else "
                                              "inferred).")
    hub: str | None = Field(default=None, description="Hugging Face hub dataset id (served from the local "
                                                      "cache "
                            "when the hub is out of reach).")
    hub_config: str | None = None
    split: str = "train"
    where: dict[str, Scalar | list[Scalar]] = Field(
        default_factory=dict,
        description="Keep only rows whose column equals the value (or is one of the list).",
    )
    id_column: str | None = Field(default="id", description="Unique id per row; null (or no such column) "
                                  "derives a stable id from each row's text.")
    text_column: str = "text"
    label_column: str | None = Field(default=None,
                                     description="Gold labels; omit to score against the reference.")
    segment_columns: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        if (self.path is None) == (self.hub is None):
            raise ValueError("give exactly one of 'path' (a local file) or 'hub' (a Hugging Face dataset id)")
        return self


class InputSpec(_Strict):
    """What each request carries besides the rendered ``prompt.user`` text (docs/inputs.md): a
    conversation, PDF documents and images from dataset columns, and documents shared by every request."""

    messages: str | None = Field(
        default=None, description="Column holding the conversation: a list of {role, content} messages, "
        "user first and last, roles alternating; content a string or a list of content blocks. "
        "prompt.user, when it renders non-empty, is added to the last user turn.")
    documents: list[str] = Field(
        default_factory=list, description="Columns holding a PDF per row: a file path (relative to the "
        "dataset file), a base64 string, bytes, or a list of these; sent as document blocks.")
    images: list[str] = Field(
        default_factory=list, description="Columns holding a JPEG/PNG/GIF/WebP image per row (path, base64, "
        "bytes, or a list of these); sent as image blocks.")
    static_documents: list[str] = Field(
        default_factory=list, description="PDF files (relative to the task file) sent before every sample's "
        "content, in the cacheable prefix (e.g. a contract playbook).")

    @property
    def used(self) -> bool:
        return bool(self.messages or self.documents or self.images or self.static_documents)


class SampleSpec(_Strict):
    size: int = Field(default=300, ge=1, description="Samples to evaluate; 200–500 is the useful range.")
    seed: int = 0
    stratify: bool = True


class PromptSpec(_Strict):
    system: str = Field(
        description="Static instructions (jinja2); the cacheable prefix. No per-sample fields.")
    user: str = Field(description="Per-sample message (jinja2); sample columns are available by name.")
    variables: dict[str, Any] = Field(default_factory=dict, description="Extra static template variables.")
    include: dict[str, str] = Field(
        default_factory=dict, description="Static variables read from files (relative to the task file), "
        "e.g. a long playbook to put in the cached system prompt.")
    cache: Literal["auto", "off"] = Field(
        default="auto",
        description="auto: cache the static system prefix when it is long enough for the model.")
    cache_ttl: Literal["auto", "5m", "1h"] = Field(
        default="auto", description="auto: 1h for batches (warm-up recipe), 5m in real time.")


FieldType = Literal["string", "number", "integer", "boolean"]


OutputKind = Literal["classification", "extraction", "text"]


class OutputSpec(_Strict):
    """The answer each model must give: a label (classification), a JSON object (extraction) or text."""

    kind: OutputKind = Field(
        default="classification",
        description="classification: a label; extraction: a JSON object; text: free text.")
    label_field: str = "label"
    labels: list[str] | dict[str, str] | None = Field(
        default=None, description="Allowed labels, or label -> description (classification).")
    confidence_field: str | None = "confidence"
    escalate_field: str | None = "escalate"
    fields: dict[str, FieldType] = Field(default_factory=dict,
                                         description="Extra answer fields, e.g. reason: string.")
    json_schema: dict[str, Any] | None = Field(
        default=None,
        description="Extraction: the JSON Schema of the object to extract (sent as structured output).")
    structured: bool = Field(default=True,
                             description="Enforce the schema with structured outputs (output_config).")

    @model_validator(mode="before")
    @classmethod
    def _kind_defaults(cls, data: Any) -> Any:
        # Free text has no JSON to carry a confidence or an escalate flag.
        if isinstance(data, dict) and data.get("kind") == "text":
            data = {"confidence_field": None, "escalate_field": None, "structured": False, **data}
        return data

    @model_validator(mode="after")
    def _kind_needs(self) -> OutputSpec:
        if self.kind == "classification" and self.labels is None:
            raise ValueError("a classification task needs output.labels "
                             "(or set output.kind: extraction / text)")
        if self.kind == "extraction" and self.json_schema is None:
            raise ValueError("an extraction task needs output.json_schema: the object to extract")
        if self.kind == "text" and (self.confidence_field or self.escalate_field or self.structured):
            raise ValueError("a text task answers in plain text: confidence_field and escalate_field must be "
                             "null and structured false")
        return self

    @field_validator("labels")
    @classmethod
    def _labels_ok(cls, value: list[str] | dict[str, str] | None) -> list[str] | dict[str, str] | None:
        if value is None:
            return value
        names = list(value)
        if len(names) < 2:
            raise ValueError("need at least two labels")
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"duplicate labels: {', '.join(dupes)}")
        return value

    @model_validator(mode="after")
    def _distinct_fields(self) -> OutputSpec:
        used = [self.label_field, self.confidence_field, self.escalate_field, *self.fields]
        used = [name for name in used if name]
        if len(set(used)) != len(used):
            raise ValueError("label_field, confidence_field, escalate_field and fields must all be "
                             "different names")
        return self

    @property
    def label_names(self) -> list[str]:
        return list(self.labels or [])

    @property
    def label_descriptions(self) -> dict[str, str]:
        if isinstance(self.labels, dict):
            return dict(self.labels)
        return {name: "" for name in self.labels or []}


Effort = Literal["low", "medium", "high", "xhigh", "max"]
Thinking = Literal["default", "disabled", "adaptive"]


class PromptVariant(_Strict):
    """A candidate configuration's own prompt. Unset parts are the task's ``prompt``; ``variables`` and
    ``include`` add to (and override) the task's. The reference always gets the task's prompt."""

    system: str | None = Field(default=None, description="Static instructions (jinja2) for this "
                                                          "configuration; default: prompt.system.")
    user: str | None = Field(default=None, description="Per-sample message (jinja2); default: prompt.user.")
    variables: dict[str, Any] = Field(default_factory=dict, description="Extra static template variables.")
    include: dict[str, str] = Field(
        default_factory=dict, description="Static variables read from files (relative to the task file), "
        "e.g. few-shot examples for this configuration's system prompt.")


class ModelSettings(_Strict):
    """One model, called exactly as production would call it. Unset values inherit from ``models:``."""

    model: str = Field(description="The model id, e.g. claude-haiku-5-5.")
    name: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$",
        description="A candidate configuration's name (report folders, tables); default: the model id "
                    "plus its settings.")
    effort: Effort | None = Field(
        default=None, description="output_config.effort; unset sends nothing (Haiku 5.5 then thinks at "
                                  "medium, Sonnet 5.5 at high).")
    thinking: Thinking | None = Field(
        default=None, description="'disabled' turns thinking off; 'adaptive' asks for it; 'default' sends "
                                  "nothing.")
    max_tokens: int | None = Field(
        default=None, ge=1, le=128_000, description="Output budget; thinking tokens count toward it.")
    provider: Platform | None = Field(
        default=None, description="Where this model is called (anthropic, bedrock, vertex); unset: "
                                  "models.provider. Every model of one run must resolve to the same one.")
    prompt: PromptVariant | None = Field(
        default=None, description="A candidate's own prompt variant (e.g. more few-shot examples); the "
                                  "reference always uses the task's prompt.")

    def default_name(self) -> str:
        """The model id plus whatever is set differently: ``claude-haiku-5-5-high-variant``."""
        thinking = self.thinking if self.thinking not in (None, "default") else ""
        parts = [self.model, self.effort or "", thinking or "", "variant" if self.prompt is not None else ""]
        return "-".join(part for part in parts if part).lower()


class AnswerLog(_Strict):
    """Recorded answers of one model, one per sample id, in a table (JSONL, JSON, CSV/TSV, Parquet…)."""

    path: str = Field(description="The log file, relative to the task file.")
    format: Literal["auto", "message", "json", "text", "fields"] = Field(
        default="auto", description="message: a Messages API message (column 'message'); json: the task's "
                                    "JSON "
        "answer as text or an object; text: a plain label or text; fields: answer fields in their own "
        "columns "
        "(see fields). auto: message when there is one, else json when it parses, else text.")
    id_field: str = Field(default="id", description="The column holding the sample id.")
    answer_field: str = Field(default="output", description="The column holding the answer (json, text).")
    fields: dict[str, str] = Field(
        default_factory=dict, description="fields format: answer field -> log column, e.g. "
        "{category: predicted, confidence: score}.")


@dataclass(frozen=True)
class RoleModel:
    """A role's model with every setting resolved (what goes into its requests)."""

    model: str
    effort: str | None
    thinking: str
    max_tokens: int


class ModelsSpec(_Strict):
    provider: Platform = Field(
        default="anthropic", description="Where the models are called: the Claude API (anthropic), Amazon "
        "Bedrock (bedrock) or Google Vertex AI (vertex); region and project in evalkit.toml [bedrock] / "
        "[vertex] (docs/platforms.md).")
    candidate: ModelSettings = Field(description="The cheap model being considered: an id (claude-haiku-5-5) "
                                                 "or {model, effort, thinking, max_tokens, prompt}.")
    candidates: list[ModelSettings] | None = Field(
        default=None, min_length=1, max_length=12,
        description="Several candidate configurations instead of one candidate (each a model id or "
                    "{name, model, effort, thinking, max_tokens, prompt}); the reference is called once per "
                    "sample for all of them, and the run recommends the cheapest shown non-inferior.")
    reference: ModelSettings = Field(description="The model it must match, e.g. claude-sonnet-5-5 (or "
                                                 "settings).")
    max_tokens: int = Field(default=1024, ge=1, le=128_000,
                            description="Default output budget per answer; thinking tokens count toward it.")
    effort: Effort | None = Field(default=None, description="Default effort for both models (unset: each "
                                  "model's own default).")
    thinking: Thinking = Field(
        default="default", description="'default' sends nothing and lets each model use its own default."
    )
    reference_log: AnswerLog | None = Field(
        default=None, description="Recorded answers of the reference (e.g. production logs): the reference "
                                  "is "
        "not called. A path, or {path, format, id_field, answer_field, fields}.")
    candidate_log: AnswerLog | None = Field(
        default=None, description="Recorded answers of the candidate (e.g. exported from another tool): the "
        "candidate is not called.")

    @field_validator("reference_log", "candidate_log", mode="before")
    @classmethod
    def _log_path(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    def log(self, role: str) -> AnswerLog | None:
        """The recorded answers that stand in for ``role``'s calls, if any."""
        return self.candidate_log if role == "candidate" else self.reference_log

    @field_validator("candidate", "reference", mode="before")
    @classmethod
    def _model_id(cls, value: Any) -> Any:
        return {"model": value} if isinstance(value, str) else value

    @field_validator("candidates", mode="before")
    @classmethod
    def _model_ids(cls, value: Any) -> Any:
        return [{"model": item} if isinstance(item, str) else item for item in value] \
            if isinstance(value, list) else value

    @model_validator(mode="before")
    @classmethod
    def _primary(cls, data: Any) -> Any:
        """``candidates`` or ``candidate``, not both; the first configuration is the primary candidate."""
        if isinstance(data, dict) and data.get("candidates") is not None:
            if data.get("candidate") is not None:
                raise ValueError("give either 'candidate' (one configuration) or 'candidates' (several), "
                                 "not both")
            if isinstance(data["candidates"], list) and data["candidates"]:
                data = {**data, "candidate": data["candidates"][0]}
        return data

    @model_validator(mode="after")
    def _configurations(self) -> ModelsSpec:
        if self.reference.prompt is not None or self.reference.name is not None:
            raise ValueError("the reference uses the task's prompt and needs no name: prompt variants and "
                             "names belong to candidates")
        if self.candidates is not None and len(self.candidates) > 1 and self.candidate_log is not None:
            raise ValueError("candidate_log stands in for one candidate: use 'candidate' with it, not "
                             "'candidates'")
        providers = sorted({entry.provider or self.provider
                            for entry in [*(self.candidates or [self.candidate]), self.reference]})
        if len(providers) > 1:
            raise ValueError(f"the models resolve to different providers ({', '.join(providers)}): one run "
                             "calls one platform; set models.provider once, or run the task once per "
                             "provider")
        names = [entry.name or entry.default_name() for entry in self.candidates or [self.candidate]]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"two candidate configurations are both called {repeated[0]!r}: give each a "
                             "distinct 'name'")
        return self

    @property
    def platform(self) -> Platform:
        """The platform every model of the run is called on (validated to be one)."""
        return self.reference.provider or self.provider

    def configurations(self) -> list[ModelSettings]:
        """Every candidate configuration, the primary (first) one first."""
        return list(self.candidates) if self.candidates else [self.candidate]

    def role(self, role: str) -> RoleModel:
        """The candidate's or the reference's settings, defaults applied (the judge is the reference)."""
        own = self.candidate if role == "candidate" else self.reference
        return RoleModel(model=own.model, effort=own.effort if own.effort is not None else self.effort,
                         thinking=own.thinking or self.thinking,
                         max_tokens=own.max_tokens if own.max_tokens is not None else self.max_tokens)


class ValiditySpec(_Strict):
    """How much broken evidence a run tolerates before it refuses to decide (verdict INVALID-RUN)."""

    max_reference_invalid: float = Field(default=0.05, ge=0, le=1,
                                         description="Share of reference answers that may be invalid or "
                                                     "failed.")
    max_truncated: float = Field(default=0.01, ge=0, le=1,
                                 description="Share of any model's answers that may end cut off by "
                                 "max_tokens.")
    max_reference_top_label: float = Field(
        default=0.95, gt=0, le=1, description="Without gold labels: the most the reference may give one "
                                              "label.")
    max_leaked: float = Field(default=0.0, ge=0, le=1, description="Share of evaluated rows that may also be "
                              "simulator training rows.")


class DecisionSpec(_Strict):
    margin: float = Field(default=0.05, gt=0, lt=0.5,
                          description="Accepted quality loss, absolute (0.05 = 5 points).")
    margin_type: Literal["absolute", "relative"] = Field(
        default="absolute",
        description="relative: margin is a fraction of the reference's accuracy (gold mode).")
    alpha: float = Field(default=0.05, gt=0, lt=0.5, description="One-sided error rate of each test.")
    reference_noise: int = Field(
        default=0, ge=0, le=500,
        description="Run the reference a second time on this many samples and report its self-agreement.")
    sequential_every: int = Field(default=100, ge=20, description="--sequential: samples between looks.")
    metric: str | None = Field(
        default=None, description="Per-sample metric the decision binarises (default by output.kind: "
        "label match, field_f1, token_f1); 'judge' asks the reference whether the answers are equivalent.")
    threshold: float | None = Field(default=None, ge=0, le=1,
                                    description="A sample counts as right when its metric is at least this.")
    min_group_size: int = Field(default=30, ge=1, description="Labels and segments with fewer samples are "
                                                              "shown "
                                "without a verdict.")
    validity: ValiditySpec = Field(default_factory=ValiditySpec)
    selection: Literal["holm", "fixed-sequence"] = Field(
        default="holm", description="With several candidates, how the family-wise error of the GO verdicts "
                                    "is "
        "kept at alpha: holm (no assumption on the order) or fixed-sequence (tested from the most to the "
        "least expensive, stopping at the first that is not GO). See docs/configurations.md.")

    @field_validator("margin", mode="before")
    @classmethod
    def _not_points(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool) and 1 <= value < 50:
            raise ValueError(f"margin is a fraction: write {value / 100:g} for {value:g} points")
        return value


class ProductionSpec(_Strict):
    """The traffic the cost projection is for."""

    daily_requests: int = Field(default=10_000, ge=1, description="Requests per day in production.")
    days_per_month: int = Field(default=30, ge=1, le=31)
    hourly_share: list[float] | None = Field(
        default=None, min_length=24, max_length=24,
        description="How the day's requests spread over the 24 hours (weights, normalised); default: "
                    "evenly. Sets how often a cached prefix expires between requests.")
    batch_every_minutes: float | None = Field(
        default=None, gt=0, description="Production sends its requests as batches this often (instead of "
        "in real time): each batch finds the prefix cache cold unless the previous one was within the TTL.")
    batch_cache_hit_rate: float = Field(
        default=0.3, ge=0, le=1,
        description="Share of a batch's requests that hit a warm prefix cache (best effort on the API: "
                    "30–98% documented; the default is the conservative end).")

    @field_validator("hourly_share")
    @classmethod
    def _shares(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (min(value) < 0 or sum(value) <= 0):
            raise ValueError("hourly_share needs 24 non-negative weights with a positive sum")
        return value


class GateSpec(_Strict):
    """What `evalkit gate` checks for this task (docs/ci.md): the deployment it guards."""

    deployment: Literal["replacement", "routed"] = Field(
        default="replacement",
        description="replacement: the candidate replaces the reference (a NO-GO fails). routed: the "
                    "candidate answers and escalates to the reference below routing.json's threshold (NO-GO "
                    "on replacement is expected); the routed quality and the escalation rate at the shipped "
                    "threshold are checked against the baseline's instead.")
    escalation_tolerance: float = Field(
        default=0.05, ge=0, le=1,
        description="Routed: allowed rise of the escalation rate over the baseline's (fraction of requests).")


DEFAULT_METRICS = {
    "classification": ["agreement", "accuracy", "macro_f1", "kappa", "confusion_matrix"],
    "extraction": ["agreement", "accuracy", "field_f1", "per_field_accuracy", "exact_match"],
    "text": ["agreement", "accuracy", "exact_match", "token_f1", "rouge_l"],
}


class MetricSpec(_Strict):
    """One entry of ``metrics:``: a metric name (built in, or registered under the ``evalkit.metrics`` entry
    point group), or your own per-sample scorer with ``function`` (docs/custom-metrics.md)."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
                      description="The metric's name: a built-in one, an entry point's, or yours (then give "
                                  "function). decision.metric can name it.")
    function: str | None = Field(
        default=None, pattern=r"^[^:]+:[A-Za-z_][A-Za-z0-9_]*$",
        description="Your scorer: 'file.py:func' (a path relative to the task file) or "
                    "'package.module:func'. Called as func(sample, answer, truth); returns a bool or a "
                    "number in [0, 1].")
    threshold: float | None = Field(
        default=None, ge=0, le=1, description="When this metric decides: a sample counts as right when its "
        "score is at least this (custom metrics default to 0.5; decision.threshold overrides it).")


class SimulatorTrainSpec(_Strict):
    """Rows of the task's own dataset the offline simulator learns this domain from (never evaluated)."""

    where: dict[str, Scalar | list[Scalar]] = Field(
        description="The training rows, e.g. {split: train} while dataset.where selects {split: test}.")


class SimulatorTaskSpec(_Strict):
    train: SimulatorTrainSpec | None = None


class TaskSpec(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="Short id; names the report folder.")
    description: str = ""
    dataset: DatasetSpec
    sample: SampleSpec = Field(default_factory=SampleSpec)
    input: InputSpec = Field(default_factory=InputSpec,
                             description="Conversations, documents and images (docs/inputs.md).")
    prompt: PromptSpec
    output: OutputSpec
    models: ModelsSpec
    metrics: list[MetricSpec] | None = Field(
        default=None, description="Metric names, or {name, function, threshold} entries for your own "
                                  "scorers; default depends on output.kind.")
    decision: DecisionSpec = Field(default_factory=DecisionSpec)
    production: ProductionSpec = Field(default_factory=ProductionSpec)
    max_cost_usd: float | None = Field(default=None, gt=0, description="Budget guard for one run, in USD.")
    gate: GateSpec = Field(default_factory=GateSpec, description="What `evalkit gate` checks (docs/ci.md).")
    simulator: SimulatorTaskSpec = Field(default_factory=SimulatorTaskSpec,
                                         description="What the offline simulator learns this task's domain "
                                                     "from.")

    _source: TaskSource | None = PrivateAttr(default=None)
    #: Where this task's candidate is written in the file (a configuration's own entry when derived).
    _candidate_key: str = PrivateAttr(default="models.candidate")

    def configuration(self, index: int) -> TaskSpec:
        """The task as its ``index``-th candidate configuration runs it: that entry as ``models.candidate``
        (with its prompt variant), everything else shared — the reference's requests are identical in
        every configuration, so the response cache and batches answer them once."""
        entries = self.models.configurations()
        models = self.models.model_copy(update={"candidate": entries[index], "candidates": None})
        derived = self.model_copy(update={"models": models})
        derived._source = self._source
        derived._candidate_key = (f"models.candidates.{index}" if self.models.candidates
                                  else "models.candidate")
        return derived

    @property
    def configuration_name(self) -> str:
        """The candidate configuration's name (its ``name``, or the model id plus its settings)."""
        return self.models.candidate.name or self.models.candidate.default_name()

    def prompt_for(self, role: str) -> RolePrompt:
        """The templates ``role`` is asked with: the task's prompt, with a candidate's variant on top."""
        base = self.prompt
        variant = self.models.candidate.prompt if role == "candidate" else None
        if variant is None:
            return RolePrompt(system=base.system, user=base.user, variables=dict(base.variables),
                              include={name: ("prompt.include." + name, path)
                                       for name, path in base.include.items()})
        key = f"{self._candidate_key}.prompt"
        return RolePrompt(
            system=variant.system if variant.system is not None else base.system,
            user=variant.user if variant.user is not None else base.user,
            variables={**base.variables, **variant.variables},
            include={**{name: ("prompt.include." + name, path) for name, path in base.include.items()},
                     **{name: (f"{key}.include.{name}", path) for name, path in variant.include.items()}},
            system_key=f"{key}.system" if variant.system is not None else "prompt.system",
            user_key=f"{key}.user" if variant.user is not None else "prompt.user")

    @field_validator("metrics", mode="before")
    @classmethod
    def _metric_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @field_serializer("metrics")
    def _metrics_as_written(self, value: list[MetricSpec] | None) -> list[str | dict[str, Any]] | None:
        # A bare name stays a bare name, so tasks that name only built-ins keep their spec hash.
        if value is None:
            return None
        return [m.name if m.model_fields_set == {"name"} else m.model_dump(exclude_defaults=True)
                for m in value]

    @property
    def metric_names(self) -> list[str]:
        if self.metrics is None:
            return list(DEFAULT_METRICS[self.output.kind])
        return [metric.name for metric in self.metrics]

    def metric_entry(self, name: str) -> tuple[int, MetricSpec] | None:
        """(index in ``metrics:``, entry) of the metric called ``name``, if the task lists it."""
        for index, metric in enumerate(self.metrics or []):
            if metric.name == name:
                return index, metric
        return None

    @property
    def source(self) -> TaskSource | None:
        return self._source

    @property
    def task_file(self) -> Path | None:
        return self._source.path if self._source else None

    @property
    def base_dir(self) -> Path:
        """Directory that relative paths in the task are resolved against."""
        return self._source.path.resolve().parent if self._source else Path.cwd()

    @property
    def spec_hash(self) -> str:
        # A task without an input section, on the Claude API, hashes as it did before the input section
        # and the provider settings existed.
        dumped = self.model_dump(mode="json", exclude=None if self.input.used else {"input"})
        if self.models.platform == "anthropic":
            models = dumped["models"]
            models.pop("provider", None)
            entries = [models.get("candidate"), models.get("reference"), *(models.get("candidates") or [])]
            for entry in entries:
                if isinstance(entry, dict) and entry.get("provider") is None:
                    entry.pop("provider", None)
        return digest(dumped)

    def error(self, path: str, message: str, *, hint: str | None = None) -> SpecError:
        """A located :class:`SpecError` for a problem found after loading (e.g. a dataset column)."""
        line = self._source.line_of(path) if self._source else None
        return SpecError(self.task_file, [SpecIssue(path=path, message=message, line=line, hint=hint)])


@dataclass(frozen=True)
class RolePrompt:
    """One role's templates, and where each is written in the task file (for located errors)."""

    system: str
    user: str
    variables: dict[str, Any]
    include: dict[str, tuple[str, str]]  # variable -> (key path, file relative to the task)
    system_key: str = "prompt.system"
    user_key: str = "prompt.user"


@dataclass
class TaskSource:
    """The text a task was loaded from, with a map from key paths to line numbers."""

    path: Path
    text: str
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)
    value_lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)

    def line_of(self, dotted: str | tuple[str | int, ...]) -> int | None:
        """Line of the key at ``dotted`` or of its nearest ancestor that exists in the file."""
        parts = _split_path(dotted) if isinstance(dotted, str) else tuple(dotted)
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            parts = parts[:-1]
        return None

    def first_content_line(self, dotted: str) -> int | None:
        """First line of a block-scalar value's text (for template line numbers)."""
        return self.value_lines.get(_split_path(dotted))


def _split_path(dotted: str) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    for piece in dotted.split("."):
        if not piece:
            continue
        match = re.fullmatch(r"(.*?)\[(\d+)\]", piece)
        if match:
            parts.append(match.group(1))
            parts.append(int(match.group(2)))
        else:
            parts.append(int(piece) if piece.isdigit() else piece)
    return tuple(parts)


def _join_path(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def _index_nodes(
    node: yaml.Node,
    prefix: tuple[str | int, ...],
    lines: dict[tuple[str | int, ...], int],
    value_lines: dict[tuple[str | int, ...], int],
    issues: list[SpecIssue],
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            path = (*prefix, key)
            line = key_node.start_mark.line + 1
            if key in seen:
                issues.append(SpecIssue(_join_path(path), "duplicate key (YAML keeps only the last one)",
                                        line, "remove one of the two entries"))
            seen.add(key)
            lines[path] = line
            start = value_node.start_mark.line + 1
            if isinstance(value_node, yaml.ScalarNode) and value_node.style in ("|", ">"):
                start += 1  # the text begins on the line after the block indicator
            value_lines[path] = start
            _index_nodes(value_node, path, lines, value_lines, issues)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = (*prefix, index)
            lines[path] = item.start_mark.line + 1
            value_lines[path] = item.start_mark.line + 1
            _index_nodes(item, path, lines, value_lines, issues)


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that owns the keys at ``loc`` (for did-you-mean hints)."""
    model: Any = TaskSpec
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        if isinstance(part, int):  # an entry of a list: same model
            continue
        info = model.model_fields.get(str(part))
        if info is None:
            return None
        annotation = info.annotation
        # list[Model] | None, Model | None: the model inside, for the keys of its entries
        inner = [arg for arg in (*get_args(annotation), *[a for arg in get_args(annotation)
                                                          for a in get_args(arg)])
                 if isinstance(arg, type) and issubclass(arg, BaseModel)]
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)) and inner:
            annotation = inner[0]
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _issue_from_pydantic(item: Mapping[str, Any], source: TaskSource) -> SpecIssue:
    loc = tuple(part for part in item["loc"] if not (isinstance(part, str) and part.startswith("function-")))
    # pydantic adds union-branch names ("list[str]", "dict[str,str]") into loc; drop them.
    loc = tuple(p for p in loc
                if not (isinstance(p, str) and ("[" in p or p in {"str", "int", "float", "bool"})))
    path = _join_path(loc)
    line = source.line_of(loc)
    kind = item["type"]
    message = item["msg"]
    hint = None
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        allowed = sorted(parent.model_fields) if parent else []
        message = f"unknown key '{loc[-1]}'"
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        if close:
            hint = f"did you mean '{close[0]}'? Valid keys here: {', '.join(allowed)}"
        elif allowed:
            hint = f"valid keys here: {', '.join(allowed)}"
    elif kind == "missing":
        message = "required key is missing"
        hint = f"add '{loc[-1]}:' under '{_join_path(loc[:-1]) or 'the top level'}'"
    elif kind.startswith("value_error"):
        message = message.removeprefix("Value error, ")
    else:
        got = item.get("input")
        if got is not None and not isinstance(got, dict | list):
            message = f"{message} (got {got!r})"
    return SpecIssue(path=path, message=message, line=line, hint=hint)


#: Bounds on what a task file may make the YAML loader build: a task is a page of settings, and an
#: "alias bomb" (anchors of anchors, 9 lines) would otherwise expand to gigabytes.
MAX_TASK_BYTES = 2_000_000
MAX_YAML_VALUES = 200_000


def _expanded_size(root: yaml.Node, path: Path) -> None:
    """Count the values ``root`` stands for once every alias is expanded (each shared node counted once
    per use, computed once per node); raise when it passes the bound, or when an alias is recursive."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in active:
            raise SpecError(path, [SpecIssue("", "a YAML alias refers to itself (a recursive anchor)",
                                             node.start_mark.line + 1, "remove the alias")])
        active.add(id(node))
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += sum(size(key) + size(value) for key, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        active.discard(id(node))
        if total > MAX_YAML_VALUES:
            raise SpecError(path, [SpecIssue(
                "", f"the YAML expands to more than {MAX_YAML_VALUES:,} values through its aliases "
                    "(&anchor / *alias)", node.start_mark.line + 1,
                "a task file needs no aliases of aliases: write the values out")])
        sizes[id(node)] = total
        return total

    size(root)


def parse_task(text: str, path: Path) -> TaskSpec:
    """Parse task YAML text; raise :class:`SpecError` with every located problem."""
    if len(text) > MAX_TASK_BYTES:
        raise SpecError(path, [SpecIssue("", f"the task file is {len(text):,} characters, over the "
                                         f"{MAX_TASK_BYTES:,} a task file may have", None,
                                         "long texts go in files read with prompt.include")])
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        message = f"not valid YAML: {problem}" + (f" ({context})" if context else "")
        raise SpecError(path, [SpecIssue("", message, mark.line + 1 if mark else None,
                                         "check indentation and quoting around this line")]) from None
    if root is None:
        raise SpecError(path, [SpecIssue("", "the file is empty", 1, "start from tasks/triage.yaml")])
    _expanded_size(root, path)
    source = TaskSource(path=path, text=text)
    issues: list[SpecIssue] = []
    _index_nodes(root, (), source.lines, source.value_lines, issues)
    try:
        data = yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506 - SafeLoader is the safe loader
    except yaml.YAMLError as exc:  # e.g. an unsafe tag that compose accepted but construct refuses
        mark = getattr(exc, "problem_mark", None)
        raise SpecError(path, [SpecIssue("", f"not valid YAML: {exc}",
                                         mark.line + 1 if mark else None)]) from None
    if not isinstance(data, dict):
        raise SpecError(path, [SpecIssue("", "expected a mapping of keys at the top level, "
                                         f"got {type(data).__name__}", 1, "start from tasks/triage.yaml")])
    try:
        spec = TaskSpec.model_validate(data)
    except ValidationError as exc:
        issues.extend(_issue_from_pydantic(item, source) for item in exc.errors())
    if issues:
        issues.sort(key=lambda issue: (issue.line or 0, issue.path))
        raise SpecError(path, issues)
    spec._source = source
    return spec


def load_task(path: str | Path) -> TaskSpec:
    """Load and validate a task file."""
    file = Path(path)
    if not file.is_file():
        hint = "task files live in tasks/, e.g. tasks/triage.yaml"
        if file.with_suffix(".yaml").is_file():
            hint = f"did you mean {file.with_suffix('.yaml')}?"
        raise SpecError(file, [SpecIssue("", "task file not found", None, hint)])
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SpecError(file, [SpecIssue("", "task file is not UTF-8 text", None)]) from None
    return parse_task(text, file)


def task_json_schema() -> dict[str, Any]:
    """JSON Schema of the task format, for editor autocompletion."""
    return TaskSpec.model_json_schema()
