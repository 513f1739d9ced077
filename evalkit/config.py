"""Project settings: ``evalkit.toml`` + ``EVALKIT_*`` environment, merged over built-in defaults.

Precedence (highest first): command-line options (applied by the caller) > environment > evalkit.toml >
defaults. Relative paths in evalkit.toml are relative to the directory that holds it, so a run behaves the
same from any working directory inside the project.
"""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from evalkit.errors import ConfigError, PricingError

SETTINGS_FILE = "evalkit.toml"
_DATED_SUFFIX = re.compile(r"-\d{8}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class TokenPrices(_Strict):
    """USD per million tokens for each token category."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_write_5m: float = Field(ge=0)
    cache_write_1h: float = Field(ge=0)
    cache_read: float = Field(ge=0)


class LongContextPrices(TokenPrices):
    threshold_tokens: int = Field(gt=0)


class ModelPrice(TokenPrices):
    long_context: LongContextPrices | None = None
    note: str | None = None

    def for_prompt(self, total_input_tokens: int) -> TokenPrices:
        """The rates that apply to a request with this many input tokens (long-context tiers)."""
        if self.long_context is not None and total_input_tokens > self.long_context.threshold_tokens:
            return self.long_context
        return self


class PlatformPricing(_Strict):
    """How a cloud platform's list prices relate to the Claude API's (``pricing.toml`` ``[platforms.*]``).

    The arithmetic is in :mod:`evalkit.cost.prices`; this is only the data."""

    as_of: str
    source: str = ""
    #: Share added to every token category on a regional (or geographic) endpoint; the global endpoint
    #: bills the base (Claude API) price.
    regional_premium: float = Field(default=0.0, ge=0, le=1)
    #: Model id globs the premium applies to (models from the 4.5 generation on).
    regional_premium_models: list[str] = Field(default_factory=list)
    note: str = ""


class PricingTable(_Strict):
    as_of: str
    source: str = ""
    batch_discount: float = Field(default=0.5, gt=0, le=1)
    aliases: dict[str, str] = Field(default_factory=dict)
    models: dict[str, ModelPrice] = Field(default_factory=dict)
    #: Models whose prices come from evalkit.toml's [pricing] section rather than the built-in table.
    overridden: list[str] = Field(default_factory=list)
    #: Per-platform pricing rules (bedrock, vertex); the Claude API's prices are ``models`` itself.
    platforms: dict[str, PlatformPricing] = Field(default_factory=dict)
    #: The platform and endpoint class these prices are for ("anthropic", "bedrock (global)", …).
    priced_for: str = "anthropic"

    def canonical_id(self, model: str) -> str:
        return self.aliases.get(model, model)

    def price_for(self, model: str) -> ModelPrice:
        """Price of ``model``; raises :class:`PricingError` rather than ever pricing it at $0."""
        candidates = [model, self.canonical_id(model), _DATED_SUFFIX.sub("", model)]
        for candidate in candidates:
            if candidate in self.models:
                return self.models[candidate]
        known = ", ".join(sorted(self.models))
        raise PricingError(
            f"no price for model '{model}' in the pricing table (as of {self.as_of})",
            hint=(
                f'add it to evalkit.toml:\n      [pricing.models."{model}"]\n'
                "      input = …  output = …  cache_write_5m = …  cache_write_1h = …  cache_read = …\n"
                f"    (USD per million tokens). Known models: {known}"
            ),
        )


class SimCorpus(_Strict):
    """Labelled text the simulator's models learn from (never the rows being evaluated)."""

    path: str
    text_column: str = "text"
    label_column: str = "label"
    where: dict[str, str | int | bool | list[str | int | bool]] = Field(default_factory=dict)


SimTier = Literal["small", "medium", "large"]


FaultEndpoint = Literal["messages", "count_tokens", "batch_create", "batch_list", "batch_retrieve",
                        "batch_results", "batch_cancel", "all"]


class SimFaults(_Strict):
    """Faults the simulated Messages endpoint injects, as fractions of requests (drawn per request)."""

    rate_limit: float = Field(default=0.0, ge=0, le=1, description="429 rate_limit_error with retry-after.")
    overloaded: float = Field(default=0.0, ge=0, le=1, description="529 overloaded_error.")
    server_error: float = Field(default=0.0, ge=0, le=1, description="500 api_error.")
    disconnect: float = Field(default=0.0, ge=0, le=1,
                              description="The connection drops before any response.")
    slow: float = Field(default=0.0, ge=0, le=1, description="The response takes slow_ms longer.")
    slow_ms: float = Field(default=2000.0, ge=0)
    retry_after_s: float = Field(default=0.05, ge=0, description="retry-after sent with 429s.")
    endpoints: list[FaultEndpoint] = Field(
        default_factory=lambda: list[FaultEndpoint](["messages"]),
        description="Where the faults above are drawn: messages, count_tokens, batch_create, batch_list, "
                    "batch_retrieve, batch_results, batch_cancel, or all.")
    after_create: float = Field(default=0.0, ge=0, le=1,
                                description="Batch creates that create the batch and then answer 504 (a "
                                            "gateway timed out): the client cannot know the batch exists.")
    after_answer: float = Field(default=0.0, ge=0, le=1,
                                description="Messages that are answered and billed, then answer 504: the "
                                            "client cannot know it was billed.")

    @property
    def any(self) -> bool:
        return any((self.rate_limit, self.overloaded, self.server_error, self.disconnect, self.slow))

    def applies_to(self, endpoint: str) -> bool:
        return "all" in self.endpoints or endpoint in self.endpoints


def _default_tiers() -> dict[str, SimTier]:
    return {
        "claude-haiku-*": "small",
        "claude-sonnet-*": "large",
        "claude-opus-*": "large",
        "claude-fable-*": "large",
        "claude-mythos-*": "large",
    }


class SimRateLimits(_Strict):
    """The simulated organisation's Messages rate limits (token buckets refilled continuously, as the API's
    are). Every response carries the ``anthropic-ratelimit-*`` headers; an exhausted bucket is a 429 with
    ``retry-after``. The defaults are high enough that a test never meets them unless it asks to."""

    requests_per_minute: int = Field(default=4000, ge=1, description="RPM limit.")
    input_tokens_per_minute: int = Field(default=2_000_000, ge=1,
                                         description="ITPM limit (cache reads do not count toward it).")
    output_tokens_per_minute: int = Field(default=400_000, ge=1, description="OTPM limit.")
    priority_tier: bool = Field(default=False, description="Also send the anthropic-priority-*-tokens-* "
                                "headers, as for an organisation on the Priority Tier.")
    enforce: bool = Field(default=True, description="Answer 429 when a bucket is exhausted.")


class SimulatorSettings(_Strict):
    seed: int = 0
    #: Accept only this API key (401 otherwise); by default any non-empty key is accepted.
    api_key: str | None = None
    faults: SimFaults = Field(default_factory=SimFaults)
    latency_ms: float = Field(default=0.0, ge=0)
    #: Share of answers that are refusals (stop_reason "refusal", HTTP 200, billed, not schema-conformant),
    #: drawn per request from its content (a repeated request refuses again, like a policy decision).
    refusal_rate: float = Field(default=0.0, ge=0, le=1)
    #: Seconds from batch creation until the simulated batch has ended (real batches: minutes to hours).
    #: Batches are processed on the simulator's own clock at that time, and billed then, polled or not.
    batch_delay_s: float = Field(default=1.0, ge=0)
    #: Seconds a canceled batch stays ``canceling`` before it has ended.
    batch_cancel_delay_s: float = Field(default=0.5, ge=0)
    #: Fractions of batch items that come back errored (api_error) or expired, chosen per item by hash:
    #: to exercise reconciliation. Resubmitted items get a new draw.
    batch_errored_fraction: float = Field(default=0.0, ge=0, le=1)
    batch_expired_fraction: float = Field(default=0.0, ge=0, le=1)
    #: Prompt-cache hits inside a batch are best-effort (facts §2: "typically 30% to 98%"): the share of
    #: batch items whose cached prefix is readable that actually read it; the others write it again.
    batch_cache_hit_rate: float = Field(default=0.7, ge=0, le=1)
    rate_limits: SimRateLimits = Field(default_factory=SimRateLimits)
    # Model-id glob -> capability tier. First match wins.
    tiers: dict[str, SimTier] = Field(default_factory=_default_tiers)
    corpora: list[SimCorpus] = Field(default_factory=list)

    def tier_for(self, model: str) -> SimTier | None:
        for pattern, tier in self.tiers.items():
            if fnmatch.fnmatchcase(model, pattern):
                return tier
        return None

    def with_overrides(self, overrides: dict[str, Any]) -> SimulatorSettings:
        """These settings with some keys replaced (``"faults.rate_limit"`` reaches into a section), validated
        like evalkit.toml: ``evalkit sim serve``'s flags."""
        data = self.model_dump()
        for key, value in overrides.items():
            if value is None:
                continue
            *sections, name = key.split(".")
            target = data
            for section in sections:
                target = target[section]
            target[name] = value
        try:
            return SimulatorSettings.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"invalid simulator settings: {problems}") from None


class BatchSettings(_Strict):
    """How evalkit uses the Message Batches API."""

    max_requests: int = Field(default=100_000, ge=1, le=100_000,
                              description="Requests per batch (API limit 100,000).")
    # Not the API's 256 MB: submitting a batch holds about ten times its body in memory (the SDK transforms
    # a copy of every request before encoding it), so a 100k-sample run's 250 MB batches peaked at GBs.
    # 5 MB: a 10k-sample run peaked at 342 MiB with 20 MB bodies, 264 with 5 MB, 266 with 2 MB (the rest is
    # its answers); 100k samples make ~60 batches, far inside the batch API's 1,000+ requests per minute.
    max_bytes: int = Field(default=5_000_000, ge=1_000, le=256_000_000,
                           description="Bytes per batch request body (API limit 256 MB; submitting needs "
                                       "~10x this in memory).")
    poll_initial_s: float = Field(default=2.0, gt=0, description="First wait between status checks.")
    poll_max_s: float = Field(default=60.0, gt=0, description="Longest wait between status checks.")
    max_attempts: int = Field(default=3, ge=1, le=10,
                              description="Submissions per item before an errored/expired item is given up.")
    warmup: bool = Field(default=True, description="Send one request per model first to write the 1 h prompt "
                         "cache, then the rest (cache hits inside a batch are otherwise best-effort).")
    create_retries: int = Field(default=4, ge=0, le=20,
                                description="Batch creates that failed without creating a batch (429, or "
                                            "an error after which no batch of this run's exists) are tried "
                                            "again this many times.")
    reconcile_delay_s: float = Field(default=2.0, ge=0,
                                     description="After a create error, wait this long before looking for "
                                                 "the batch in the workspace's batch list.")
    create_settle_s: float = Field(default=60.0, ge=0,
                                   description="A create whose outcome is unknown (an error, or a process "
                                               "that died during it) is looked for in the batch list this "
                                               "long after it was sent before its requests are submitted "
                                               "again.")


Platform = Literal["anthropic", "bedrock", "vertex"]
PLATFORMS: tuple[Platform, ...] = ("anthropic", "bedrock", "vertex")


def builtin_model_ids(platform: str) -> dict[str, str]:
    """evalkit model id -> the platform's (``evalkit/data/platforms.toml``)."""
    text = resources.files("evalkit").joinpath("data/platforms.toml").read_text(encoding="utf-8")
    table: dict[str, str] = tomllib.loads(text)[platform]["models"]
    return table


class BedrockSettings(_Strict):
    """``[bedrock]``: where Claude on Amazon Bedrock is reached. Credentials come from the botocore chain
    (environment, ``~/.aws``, SSO, instance roles) or ``AWS_BEARER_TOKEN_BEDROCK``, never from here."""

    region: str | None = Field(default=None, description="AWS region (else AWS_REGION / AWS_DEFAULT_REGION "
                                                         "/ the AWS profile's region).")
    profile: str | None = Field(default=None, description="AWS named profile (else AWS_PROFILE / default).")
    inference_profile: Literal["global", "us", "eu", "apac", "jp", "au", "none"] = Field(
        default="global", description="Cross-Region inference profile prefixed to each model id "
        "(global.anthropic.…); 'none' invokes the in-Region model id. Regional and geographic profiles "
        "cost more than global for 4.5+ models (pricing.toml).")
    models: dict[str, str] = Field(default_factory=dict, description="evalkit model id -> Bedrock model id "
                                   "(without the profile prefix), over the built-in table.")

    def model_ids(self) -> dict[str, str]:
        return {**builtin_model_ids("bedrock"), **self.models}


class VertexSettings(_Strict):
    """``[vertex]``: where Claude on Google Vertex AI is reached. Credentials: application default
    credentials (google-auth), or an access token in ``EVALKIT_VERTEX_ACCESS_TOKEN``."""

    region: str | None = Field(default=None, description="Vertex location: 'global' or a region "
                                                         "(else CLOUD_ML_REGION).")
    project_id: str | None = Field(default=None, description="Google Cloud project (else "
                                   "ANTHROPIC_VERTEX_PROJECT_ID, else the credentials' project).")
    models: dict[str, str] = Field(default_factory=dict, description="evalkit model id -> Vertex model "
                                   "name (claude-haiku-4-5@20251001), over the built-in table.")

    def model_ids(self) -> dict[str, str]:
        return {**builtin_model_ids("vertex"), **self.models}


class Settings(_Strict):
    """Resolved settings. Paths are absolute."""

    root: Path
    settings_file: Path | None = None
    cache_dir: Path
    reports_dir: Path
    #: The shared store (``postgresql://…``) for paid answers, batch claims and run history; None: the
    #: embedded default (diskcache and files under .evalkit/ and reports/). A secret: never printed.
    store: SecretStr | None = None
    concurrency: int = Field(default=8, ge=1, le=256)
    max_retries: int = Field(default=4, ge=0, le=20)
    #: Seconds to wait for one answer, at least; a request that may write more output waits longer
    #: (``timeout_per_output_token_s`` × its max_tokens), as the SDK sizes its own timeouts.
    request_timeout_s: float = Field(default=600.0, gt=0)
    timeout_per_output_token_s: float = Field(default=3600 / 128_000, ge=0)
    #: Folders outside the task's own folder that ``prompt.include`` may read from (none by default).
    include_dirs: list[Path] = Field(default_factory=list)
    pricing: PricingTable
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    bedrock: BedrockSettings = Field(default_factory=BedrockSettings)
    vertex: VertexSettings = Field(default_factory=VertexSettings)

    @field_validator("cache_dir", "reports_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.resolve()

    def resolve(self, path: str | Path) -> Path:
        """A path from evalkit.toml, made absolute against the project root."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else (self.root / candidate).resolve()


class _EvalkitSection(_Strict):
    cache_dir: str = ".evalkit/cache"
    reports_dir: str = "reports"
    store: str | None = None
    concurrency: int = 8
    max_retries: int = 4
    request_timeout_s: float = 600.0
    timeout_per_output_token_s: float = 3600 / 128_000
    include_dirs: list[str] = Field(default_factory=list)


class _PricingOverrides(_Strict):
    as_of: str | None = None
    source: str | None = None
    batch_discount: float | None = None
    aliases: dict[str, str] = Field(default_factory=dict)
    models: dict[str, ModelPrice] = Field(default_factory=dict)


class _SettingsFile(_Strict):
    evalkit: _EvalkitSection = Field(default_factory=_EvalkitSection)
    pricing: _PricingOverrides = Field(default_factory=_PricingOverrides)
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    bedrock: BedrockSettings = Field(default_factory=BedrockSettings)
    vertex: VertexSettings = Field(default_factory=VertexSettings)


def builtin_pricing() -> PricingTable:
    text = resources.files("evalkit").joinpath("data/pricing.toml").read_text(encoding="utf-8")
    return PricingTable.model_validate(tomllib.loads(text))


def find_settings_file(start: Path) -> Path | None:
    """The nearest evalkit.toml at or above ``start``."""
    start = start.resolve()
    for directory in (start, *start.parents):
        candidate = directory / SETTINGS_FILE
        if candidate.is_file():
            return candidate
    return None


def _format_validation(file: Path, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"])
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see the evalkit.toml in the project for valid keys)"
        lines.append(f"  {file}: {loc}: {message}")
    return "\n".join(lines)


def _env_overrides() -> dict[str, Any]:
    mapping = {
        "EVALKIT_CACHE_DIR": "cache_dir",
        "EVALKIT_REPORTS_DIR": "reports_dir",
        "EVALKIT_STORE": "store",
        "EVALKIT_CONCURRENCY": "concurrency",
        "EVALKIT_MAX_RETRIES": "max_retries",
    }
    return {field: os.environ[var] for var, field in mapping.items() if os.environ.get(var)}


def load_settings(start: Path | None = None, *, settings_file: Path | None = None) -> Settings:
    """Find and load evalkit.toml (searching upward from ``start``), apply env overrides."""
    start = (start or Path.cwd()).resolve()
    file = settings_file or find_settings_file(start)
    raw: dict[str, Any] = {}
    if file is not None:
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read settings file: {exc.strerror}") from None
    try:
        parsed = _SettingsFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid settings in {file}:\n{_format_validation(file or start, exc)}") from None

    root = file.parent if file is not None else start
    section = parsed.evalkit.model_dump()
    section.update(_env_overrides())

    pricing = builtin_pricing()
    overrides = parsed.pricing
    pricing = PricingTable(
        as_of=overrides.as_of or pricing.as_of,
        source=overrides.source or pricing.source,
        batch_discount=overrides.batch_discount or pricing.batch_discount,
        aliases={**pricing.aliases, **overrides.aliases},
        models={**pricing.models, **overrides.models},
        overridden=sorted(overrides.models),
        platforms=pricing.platforms,
    )

    def absolute(path: str) -> Path:
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else root / candidate

    try:
        return Settings(
            root=root,
            settings_file=file,
            cache_dir=absolute(section["cache_dir"]),
            reports_dir=absolute(section["reports_dir"]),
            store=SecretStr(section["store"]) if section["store"] else None,
            concurrency=section["concurrency"],
            max_retries=section["max_retries"],
            request_timeout_s=section["request_timeout_s"],
            timeout_per_output_token_s=section["timeout_per_output_token_s"],
            include_dirs=[absolute(path).resolve() for path in section["include_dirs"]],
            pricing=pricing,
            simulator=parsed.simulator,
            batch=parsed.batch,
            bedrock=parsed.bedrock,
            vertex=parsed.vertex,
        )
    except ValidationError as exc:
        raise ConfigError(f"invalid settings (evalkit.toml or EVALKIT_* environment):\n"
                          f"{_format_validation(file or start, exc)}") from None
