"""Choosing where requests go: the real Anthropic API, an ``evalkit sim serve`` URL, or the in-process
simulator. All three go through the same official SDK client (:mod:`evalkit.providers.anthropic`).

The platform (``models.provider``: anthropic, bedrock, vertex) picks the SDK client: ``AsyncAnthropic``,
``AsyncAnthropicBedrock`` or ``AsyncAnthropicVertex``, each against the real service or the simulator
(which speaks each platform's wire format), and the price table of that platform (docs/platforms.md)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit._io import private_dir
from evalkit._urls import redact_url
from evalkit.config import Platform, PricingTable, Settings
from evalkit.cost.prices import platform_pricing
from evalkit.errors import AuthError, ConfigError, UsageError
from evalkit.providers.anthropic import (
    DEFAULT_BASE_URL,
    PLATFORM_NAMES,
    AnthropicProvider,
    make_client,
    make_platform_client,
)

#: Placeholder credential for the in-process simulator (it checks that one is sent, not its value).
SIMULATOR_KEY = "offline-simulator-no-key"
#: Placeholder AWS keys the in-process simulator's Bedrock requests are SigV4-signed with, and the
#: placeholder Google access token of its Vertex requests (the simulator checks form, not value).
SIMULATOR_AWS_KEYS = ("AKIAEVALKITSIMULATOR", "evalkit-simulator-placeholder-secret")
SIMULATOR_VERTEX_TOKEN = "ya29.evalkit-simulator-placeholder"
SIMULATOR_VERTEX_PROJECT = "evalkit-simulator"
#: Bedrock ids that already name where they run: a cross-Region profile prefix or an ARN.
_PROFILE_PREFIXES = ("global.", "us.", "eu.", "apac.", "jp.", "au.", "us-gov.", "arn:")
#: Environment that shows platform credentials are configured (``offline=None`` then calls the platform).
_CREDENTIAL_ENV = {
    "bedrock": ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK", "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
    "vertex": ("GOOGLE_APPLICATION_CREDENTIALS", "EVALKIT_VERTEX_ACCESS_TOKEN"),
}
_CREDENTIAL_FILES = {"bedrock": ("~/.aws/credentials", "~/.aws/config"),
                     "vertex": ("~/.config/gcloud/application_default_credentials.json",)}
log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from evalkit.sim import Simulator


@dataclass(frozen=True)
class Backend:
    provider: AnthropicProvider
    kind: str  # "simulator" | "api"
    description: str
    platform: Platform = "anthropic"
    #: The prices of the platform (and endpoint class) that serves the run; None: settings.pricing.
    pricing: PricingTable | None = None

    @property
    def simulated(self) -> bool:
        return self.provider.simulated

    @property
    def supports_batch(self) -> bool:
        return self.provider.supports_batch

    def priced(self, settings: Settings) -> Settings:
        """``settings`` with this platform's price table: every cost of the run comes from it."""
        return settings if self.pricing is None else settings.model_copy(update={"pricing": self.pricing})


def _on_simulator(simulator: Simulator, factory: Callable[..., Any], **options: Any) -> Callable[[], Any]:
    """The client factory for the in-process simulator: its app (web framework, batch store, which reads
    every stored batch) is built when the first request must be sent, never for a run answered from the
    cache. The run is SIMULATED either way: that follows the backend's kind, not what was sent."""
    return lambda: factory(asgi_app=simulator.app, **options)


def run_mode(backend: Backend, mode: str, *, detach: bool = False) -> tuple[str, str | None]:
    """The mode a run can use on ``backend``, and a note when it differs from the one asked for:
    ``--mode batch`` on Bedrock/Vertex runs in real time (the SDK's platform clients have no batch API),
    at real-time prices (no batch discount is estimated or billed). ``--detach`` cannot: refused."""
    if mode != "batch" or backend.supports_batch:
        return mode, None
    name = PLATFORM_NAMES[backend.platform]
    if detach:
        raise UsageError(f"--detach needs Message Batches, which {name} does not offer through the SDK",
                         hint="drop --detach (the run then sends real-time requests), or use "
                              "models.provider: anthropic")
    return "realtime", (f"note: {name} has no Message Batches API in the SDK: this run sends real-time "
                        "requests at real-time prices (no 50% batch discount); --mode realtime says so "
                        "without this note (docs/platforms.md)")


def connect(settings: Settings, *, offline: bool | None, platform: Platform = "anthropic") -> Backend:
    """``offline=True``: in-process simulator. ``False``: the API (a key is required). ``None``: the API
    when ``ANTHROPIC_API_KEY`` is set, else the simulator.

    ``ANTHROPIC_BASE_URL`` redirects API traffic (e.g. to ``evalkit sim serve``); a simulator reached that
    way identifies itself by a response header and is reported as SIMULATED too.

    ``platform`` bedrock / vertex: see :func:`connect_platform`.
    """
    if platform != "anthropic":
        return connect_platform(settings, offline=offline, platform=platform)
    api_key = os.environ.get("ANTHROPIC_API_KEY", "").strip()
    base_url = os.environ.get("ANTHROPIC_BASE_URL", "").strip() or None
    if offline is None:
        offline = not api_key
    if offline:
        from evalkit.sim import Simulator, simulator_state_dir  # noqa: PLC0415 - sklearn/starlette on demand

        private_dir(simulator_state_dir(settings))  # its billing ledger is evalkit's state: owner-only
        simulator = Simulator(settings)
        client = _on_simulator(simulator, make_client, api_key=SIMULATOR_KEY,
                               base_url="http://simulator.evalkit.invalid", max_retries=settings.max_retries,
                               timeout_s=settings.request_timeout_s)
        provider = AnthropicProvider(connect=client, endpoint=simulator.endpoint, simulated=True,
                                     timeout_s=settings.request_timeout_s,
                                     timeout_per_output_token_s=settings.timeout_per_output_token_s)
        why = "--offline" if api_key else "no ANTHROPIC_API_KEY is set"
        log.info("backend: the in-process simulator (%s)", why)
        return Backend(provider, "simulator", f"built-in offline simulator ({why})")
    if not api_key:
        raise AuthError(
            "ANTHROPIC_API_KEY is not set, and this run was asked to use the API (--online)",
            hint="export ANTHROPIC_API_KEY=… (any value works for `evalkit sim serve`), or use --offline",
        )
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise UsageError(f"ANTHROPIC_BASE_URL must start with http:// or https://, got "
                         f"{redact_url(base_url)!r}")
    # The SDK is imported and its client made when the first request is sent, not for cached answers.
    client = partial(make_client, api_key=api_key, base_url=base_url, max_retries=settings.max_retries,
                     timeout_s=settings.request_timeout_s)
    # The endpoint names the API in cache keys, records and messages: never with the URL's credentials.
    endpoint = redact_url((base_url or DEFAULT_BASE_URL).rstrip("/"))
    log.info("backend: the Anthropic API at %s (max_retries %d, timeout %g s)", endpoint,
             settings.max_retries, settings.request_timeout_s)
    provider = AnthropicProvider(connect=client, endpoint=endpoint, timeout_s=settings.request_timeout_s,
                                 timeout_per_output_token_s=settings.timeout_per_output_token_s)
    return Backend(provider, "api", f"Anthropic API at {endpoint}")


def _has_credentials(platform: str) -> bool:
    return any(os.environ.get(name, "").strip() for name in _CREDENTIAL_ENV[platform]) or any(
        Path(file).expanduser().is_file() for file in _CREDENTIAL_FILES[platform])


def _where(settings: Settings) -> str:
    return str(settings.settings_file) if settings.settings_file else "evalkit.toml"


def _bedrock_region(settings: Settings, *, simulated: bool) -> str:
    region = (settings.bedrock.region or os.environ.get("AWS_REGION", "").strip()
              or os.environ.get("AWS_DEFAULT_REGION", "").strip())
    if not region and not simulated:
        try:
            import boto3  # type: ignore[import-untyped]  # noqa: PLC0415 - the profile's region, as the SDK

            region = boto3.Session(profile_name=settings.bedrock.profile).region_name or ""
        except Exception:  # noqa: BLE001 - no boto3, or a broken profile: the error below says what to set
            region = ""
    if region:
        return region
    if simulated:
        return "us-east-1"
    raise ConfigError(f"{_where(settings)}: no AWS region for Amazon Bedrock",
                      hint="set [bedrock] region = \"us-east-1\" in evalkit.toml, or AWS_REGION, or a "
                           "region for your AWS profile")


def _vertex_location(settings: Settings, *, simulated: bool) -> tuple[str, str | None]:
    region = settings.vertex.region or os.environ.get("CLOUD_ML_REGION", "").strip()
    project = settings.vertex.project_id or os.environ.get("ANTHROPIC_VERTEX_PROJECT_ID", "").strip() or None
    if simulated:
        return region or "global", project or SIMULATOR_VERTEX_PROJECT
    if not region:
        raise ConfigError(f"{_where(settings)}: no Google Cloud region for Vertex AI",
                          hint="set [vertex] region = \"global\" (or e.g. \"us-east5\") in evalkit.toml, "
                               "or CLOUD_ML_REGION")
    return region, project  # no project: the SDK takes the credentials' project, or says to set one


def platform_model_ids(settings: Settings, platform: str) -> dict[str, str]:
    """evalkit model id -> the platform's, built-in table + evalkit.toml, Bedrock ids with the profile."""
    if platform == "vertex":
        return settings.vertex.model_ids()
    prefix = settings.bedrock.inference_profile
    return {model: (bedrock_id if prefix == "none" or bedrock_id.startswith(_PROFILE_PREFIXES)
                    else f"{prefix}.{bedrock_id}")
            for model, bedrock_id in settings.bedrock.model_ids().items()}


def connect_platform(settings: Settings, *, offline: bool | None, platform: Platform) -> Backend:
    """Claude on Amazon Bedrock or Google Vertex AI through the SDK's platform client.

    ``offline=None`` calls the platform when its credentials are configured (AWS keys, profile or config
    files; Google application default credentials), else the in-process simulator. The SDK's base-URL
    variables (``ANTHROPIC_BEDROCK_BASE_URL``, ``ANTHROPIC_VERTEX_BASE_URL``) redirect the traffic, e.g. to
    ``evalkit sim serve``, which identifies itself and is reported SIMULATED."""
    name = PLATFORM_NAMES[platform]
    base_env = "ANTHROPIC_BEDROCK_BASE_URL" if platform == "bedrock" else "ANTHROPIC_VERTEX_BASE_URL"
    base_url = os.environ.get(base_env, "").strip() or None
    if offline is None:
        offline = not (_has_credentials(platform) or base_url)
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise UsageError(f"{base_env} must start with http:// or https://, got {redact_url(base_url)!r}")
    common = {"max_retries": settings.max_retries, "timeout_s": settings.request_timeout_s}
    if platform == "bedrock":
        region = _bedrock_region(settings, simulated=offline)
        regional = settings.bedrock.inference_profile != "global"
        where = f"{region}, {settings.bedrock.inference_profile} inference profile"
        options = {"region": region, "aws_profile": settings.bedrock.profile}
    else:
        region, project = _vertex_location(settings, simulated=offline)
        regional = region != "global"
        where = f"{project or 'the credentials project'}, {region}"
        token = os.environ.get("EVALKIT_VERTEX_ACCESS_TOKEN", "").strip() or None
        options = {"region": region, "project_id": project, "access_token": token}
    pricing = platform_pricing(settings.pricing, platform, regional=regional)
    model_ids = platform_model_ids(settings, platform)
    if offline:
        from evalkit.sim import Simulator, simulator_state_dir  # noqa: PLC0415 - sklearn/starlette on demand

        private_dir(simulator_state_dir(settings))
        simulator = Simulator(settings)
        placeholders: dict[str, Any] = {"access_token": SIMULATOR_VERTEX_TOKEN}
        if platform == "bedrock":
            # SigV4-signed with placeholder keys, unless a Bedrock API key is in the environment: the SDK
            # then sends it (and refuses keys besides), so the simulator gets a placeholder API key.
            placeholders = ({"api_key": SIMULATOR_KEY, "aws_profile": None}
                            if os.environ.get("AWS_BEARER_TOKEN_BEDROCK", "").strip()
                            else {"aws_keys": SIMULATOR_AWS_KEYS, "aws_profile": None})
        base = "http://simulator.evalkit.invalid" + ("/v1" if platform == "vertex" else "")
        client = _on_simulator(simulator, partial(make_platform_client, platform), base_url=base,
                               **{**options, **placeholders, **common})
        provider = AnthropicProvider(connect=client, endpoint=f"{simulator.endpoint}/{platform}",
                                     simulated=True, platform=platform, model_ids=model_ids,
                                     timeout_s=settings.request_timeout_s,
                                     timeout_per_output_token_s=settings.timeout_per_output_token_s)
        log.info("backend: the in-process simulator speaking %s (%s)", name, where)
        return Backend(provider, "simulator", f"built-in offline simulator speaking {name} ({where})",
                       platform=platform, pricing=pricing)
    client = partial(make_platform_client, platform, base_url=base_url,
                     **{**options, **common})  # type: ignore[arg-type]
    endpoint = f"{platform}:{where}" + (f" via {redact_url(base_url.rstrip('/'))}" if base_url else "")
    provider = AnthropicProvider(connect=client, endpoint=endpoint, platform=platform, model_ids=model_ids,
                                 timeout_s=settings.request_timeout_s,
                                 timeout_per_output_token_s=settings.timeout_per_output_token_s)
    log.info("backend: %s (%s)", name, endpoint)
    service = {"bedrock": "runtime", "vertex": "endpoint"}[platform]
    return Backend(provider, "api", f"{name} {service} ({where})"
                   + (f" at {redact_url(base_url)}" if base_url else ""), platform=platform, pricing=pricing)
