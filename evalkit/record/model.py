"""The run record: the typed contract between the stages and every reader (report, gate, tune, bench).

``summary.json`` is ``RunRecord.model_dump_json()``; ``RunRecord.model_json_schema()`` is documented in
``docs/run-record.md`` (and written to ``docs/run-record.schema.json``). ``schema_version`` changes
whenever a field changes meaning or disappears; readers refuse a version they do not know.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import model_validator

from evalkit._typed import Typed
from evalkit.cost.estimate import Estimate
from evalkit.cost.prices import Cost
from evalkit.cost.projection import Projection
from evalkit.cost.totals import ModelTotals
from evalkit.cost.verbosity import TokenAdvice
from evalkit.prompts.lint import Finding
from evalkit.prompts.prompt_caching import CachePlan
from evalkit.record.rows import UsageCounts
from evalkit.routing.analysis import RoutingAnalysis
from evalkit.scoring.compare import LabelChange
from evalkit.scoring.metrics import Metrics, OutcomeCounts
from evalkit.stats.decision import Decision, Verdict
from evalkit.stats.groups import GroupDecision
from evalkit.stats.validity import Validity

SCHEMA_VERSION: Final = 2


# -- provenance: what ran, where, on what -------------------------------------------------------------
class BackendInfo(Typed):
    kind: Literal["simulator", "api"]
    endpoint: str
    description: str
    #: Which platform served the run (its wire format, when simulated): the Claude API, Amazon Bedrock or
    #: Google Vertex AI.
    platform: Literal["anthropic", "bedrock", "vertex"] = "anthropic"


class TaskInfo(Typed):
    name: str
    file: str
    spec_hash: str


class ModelSetup(Typed):
    """How a role's model was called: what production would send."""

    model: str
    effort: str | None  # None: not sent (the model's own default)
    thinking: str  # "default" (not sent) | "disabled" | "adaptive"
    max_tokens: int


class ModelsInfo(Typed):
    candidate: str
    reference: str
    reference_source: str  # "called", "called (simulated)" or "recorded: <path>"
    candidate_source: str = "called"
    setup: dict[str, ModelSetup] = {}


class PromptInfo(Typed):
    system_hash: str
    templates_hash: str


class PricingInfo(Typed):
    as_of: str
    source: str
    batch_discount: float
    #: The platform and endpoint class the prices are for: "anthropic", "bedrock (global)",
    #: "vertex (regional, +10%)".
    priced_for: str = "anthropic"


class Provenance(Typed):
    evalkit_version: str
    run_id: str
    created_at: str
    finished_at: str
    #: True when any answer came from evalkit's simulator: never present such a run as Claude's.
    simulated: bool
    backend: BackendInfo
    mode: Literal["batch", "realtime"]
    task: TaskInfo
    models: ModelsInfo
    prompt: PromptInfo
    pricing: PricingInfo


# -- inputs and execution -----------------------------------------------------------------------------
class DatasetInfo(Typed):
    source: str
    hash: str
    rows_available: int
    sample_size: int
    seed: int
    sample_hash: str
    notes: list[str]


class ExecutionInfo(Typed):
    requests_sent: int
    cache_hits: int
    retries: int
    #: Retries after an attempt that may have been billed although its answer never arrived (it timed
    #: out, or its connection dropped after sending; or a run died with it in flight): each may have
    #: paid for its request twice. ``cost_usd.this_run_upper_bound`` includes them.
    possibly_billed_twice: int = 0
    timeouts: int = 0  # attempts that timed out (each keeps its concurrency slot for another timeout)
    #: Answers another evalkit process sharing the cache was fetching: waited for, not paid for again.
    shared_with_other_runs: int = 0
    answered: int = 0  # requests this run sent that came back with an answer (0 with errors: exit 4)
    seconds: float
    errors: int
    deduplicated: int
    by_model: dict[str, int]
    concurrency: int
    cache_mode: str


class BatchSummary(Typed):
    """The batch ids behind every answer used (cached ones too) and what this run did in batch mode."""

    answer_batch_ids: list[str]
    answers_from_batches: int
    batch_ids: list[str] = []
    reattached: list[str] = []
    submitted_items: int = 0
    resubmitted_items: int = 0
    failed_items: dict[str, int] = {}
    fallback_realtime: int = 0
    given_up: int = 0
    warmup_items: int = 0
    poll_seconds: float = 0.0
    #: Create calls that failed; after each, the batch was found by this run's marker or proved absent.
    create_errors: int = 0
    verified: list[str] = []  # batches proved this run's by the marker in their custom_ids
    not_ours: list[str] = []  # same-size batches of the same time that proved somebody else's: untouched
    canceled_duplicates: list[str] = []  # evalkit's own batches cancelled because another answered them
    duplicate_items: int = 0  # requests answered (and billed) by two of evalkit's own batches


# -- the decision's companions ------------------------------------------------------------------------
class SequentialLook(Typed):
    n: int
    boundary: float
    verdict: str
    statistic: float | None


class SequentialInfo(Typed):
    looks: list[int]
    boundaries: list[float]
    history: list[SequentialLook]
    stopped_at: int
    n_max: int
    samples_saved: int
    cost_saved_usd: float = 0.0


class ReferenceNoise(Typed):
    n: int
    self_agreement: float
    interval: tuple[float, float]
    margin_meaningful: bool
    note: str


# -- usage and cost -----------------------------------------------------------------------------------
class CostBreakdown(Typed):
    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    total: float

    @classmethod
    def of(cls, cost: Cost) -> CostBreakdown:
        return cls.model_validate(cost.to_dict())


class ModelUsage(Typed):
    model: str
    calls: int
    answered: int
    from_cache: int
    usage: UsageCounts
    cost_usd: CostBreakdown
    cost_this_run_usd: CostBreakdown
    cost_without_batch_discount_usd: CostBreakdown

    @classmethod
    def of(cls, totals: ModelTotals) -> ModelUsage:
        return cls(model=totals.model, calls=totals.calls, answered=totals.answered,
                   from_cache=totals.from_cache,
                   usage=UsageCounts.of(totals.usage), cost_usd=CostBreakdown.of(totals.cost),
                   cost_this_run_usd=CostBreakdown.of(totals.cost_this_run),
                   cost_without_batch_discount_usd=CostBreakdown.of(totals.cost_standard))


class CachingInfo(Typed):
    """Prompt caching for one role: the plan, the tokens read and written, and the dollars it saved."""

    plan: CachePlan
    cache_read_tokens: int
    cache_write_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int
    hit_rate: float | None  # share of cached-prefix tokens read rather than written
    requests_with_cache_read: int
    requests_with_cache_write: int
    savings_usd: float

    @classmethod
    def of(cls, plan: CachePlan, totals: ModelTotals) -> CachingInfo:
        read, written = totals.usage.cache_read_input_tokens, totals.usage.cache_creation_input_tokens
        return cls(plan=plan, cache_read_tokens=read, cache_write_tokens=written,
                   cache_write_5m_tokens=totals.usage.cache_write_5m_tokens,
                   cache_write_1h_tokens=totals.usage.cache_write_1h_tokens,
                   hit_rate=round(read / (read + written), 6) if read + written else None,
                   requests_with_cache_read=totals.requests_with_cache_read,
                   requests_with_cache_write=totals.requests_with_cache_write,
                   savings_usd=round(totals.cost_uncached.total - totals.cost.total, 8))


class CostSummary(Typed):
    answers: float  # every answer used, at what it was billed
    answers_without_batch_discount: float
    batch_savings: float
    cache_savings: float
    this_run: float  # only what this run paid (cache hits were paid for earlier)
    #: What this run may have paid at most: ``this_run`` plus every attempt that may have been billed
    #: without its answer arriving (``execution.possibly_billed_twice`` and requests that failed so).
    this_run_upper_bound: float = 0.0
    possibly_billed_twice: float = 0.0  # the difference, in USD

    @model_validator(mode="before")
    @classmethod
    def _bound_of_older_records(cls, data: Any) -> Any:
        # Records written before the bound existed paid exactly what they say.
        if isinstance(data, dict) and "this_run_upper_bound" not in data and "this_run" in data:
            data = {**data, "this_run_upper_bound": data["this_run"]}
        return data

    @classmethod
    def of(cls, totals: dict[str, ModelTotals], possibly_billed_twice: float = 0.0) -> CostSummary:
        parts = totals.values()
        this_run = round(sum(t.cost_this_run.total for t in parts), 6)
        return cls(answers=round(sum(t.cost.total for t in parts), 6),
                   answers_without_batch_discount=round(sum(t.cost_standard.total for t in parts), 6),
                   batch_savings=round(sum(t.cost_standard.total - t.cost.total for t in parts), 6),
                   cache_savings=round(sum(t.cost_uncached.total - t.cost.total for t in parts), 6),
                   this_run=this_run, this_run_upper_bound=round(this_run + possibly_billed_twice, 6),
                   possibly_billed_twice=round(possibly_billed_twice, 6))


# -- several candidate configurations ----------------------------------------------------------------
class RoutedOption(Typed):
    """A configuration served cheap-first: it answers, the reference takes its escalations."""

    threshold: float
    escalation_rate: float  # held-out (cross-fitted) estimate
    quality_loss: float  # held-out, against always-reference
    cost_per_1k_usd: float
    pays: bool  # cheaper than always using the reference


class ConfigurationResult(Typed):
    """One candidate configuration against the shared reference, and its place in the family of tests."""

    name: str
    primary: bool  # the task's first configuration: the one summary.json's decision is about
    setup: ModelSetup
    prompt_variant: bool
    system_hash: str
    folder: str  # its own run folder, relative to the run's (configs/<name>)
    verdict: Verdict  # its own decision, alone
    reason: str
    loss: float | None
    loss_interval: tuple[float, float] | None
    quality: float | None  # candidate accuracy (gold) or agreement with the reference
    quality_interval: tuple[float, float] | None  # Wilson 95%
    p_go: float
    adjusted_p: float
    go: bool  # GO after the family-wise correction
    cost_per_1k_usd: float  # serving it alone in production (the cheaper caching option)
    eval_cost_usd: float  # its candidate answers in this run
    routed: RoutedOption | None = None


class PromptGap(Typed):
    """The task's prompt against a prompt variant of the same model and settings."""

    base: str
    variant: str
    base_verdict: Verdict
    variant_verdict: Verdict
    closed: bool  # the variant is GO (family-adjusted) where the task's prompt was not
    note: str
    labels: list[LabelChange]


class Selection(Typed):
    """The cheapest configuration shown non-inferior, with the error rate of that claim."""

    method: Literal["holm", "fixed-sequence"]
    alpha: float
    margin: float
    error_statement: str
    configurations: list[ConfigurationResult]
    recommended: str | None
    reason: str
    prompt_gaps: list[PromptGap] = []

    def configuration(self, name: str) -> ConfigurationResult:
        return next(c for c in self.configurations if c.name == name)


class RunRecord(Typed):
    """Everything one evaluation run established, and how."""

    schema_version: Literal[2] = SCHEMA_VERSION
    provenance: Provenance
    dataset: DatasetInfo
    execution: ExecutionInfo
    batch: BatchSummary
    scoring_mode: Literal["gold", "reference"]
    outcomes: dict[str, OutcomeCounts]
    metrics: Metrics
    estimate: Estimate
    budget_usd: float | None
    decision: Decision
    #: With --sequential: what the fixed-sample test says on the same (early-stopped) samples.
    decision_fixed_sample: Decision | None = None
    sequential: SequentialInfo | None = None
    #: dimension ("label" or a segment column) -> group -> the decision within it (Holm-adjusted family).
    group_decisions: dict[str, dict[str, GroupDecision]]
    #: Whether the evidence can support a verdict at all; when not, ``decision`` is INVALID-RUN.
    validity: Validity
    reference_noise: ReferenceNoise | None = None
    routing: RoutingAnalysis
    projection: Projection
    models_usage: dict[str, ModelUsage]
    caching: dict[str, CachingInfo]
    lint: list[Finding]
    cost_usd: CostSummary
    #: Output tokens per model and what a budget or verbosity change would save.
    verbosity: list[TokenAdvice] = []
    #: With ``models.candidates``: every configuration, the family-wise decision and the recommendation.
    selection: Selection | None = None

    @property
    def simulated(self) -> bool:
        return self.provenance.simulated

    @property
    def run_id(self) -> str:
        return self.provenance.run_id

    @property
    def task_name(self) -> str:
        return self.provenance.task.name
