"""Choosing where requests go: the real Anthropic API, an ``evalkit sim serve`` URL, or the in-process
simulator. All three go through the same official SDK client (:mod:`evalkit.providers.anthropic`)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import partial

from evalkit._io import private_dir
from evalkit._urls import redact_url
from evalkit.config import Settings
from evalkit.errors import AuthError, UsageError
from evalkit.providers.anthropic import DEFAULT_BASE_URL, AnthropicProvider, make_client

#: Placeholder credential for the in-process simulator (it checks that one is sent, not its value).
SIMULATOR_KEY = "offline-simulator-no-key"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backend:
    provider: AnthropicProvider
    kind: str  # "simulator" | "api"
    description: str

    @property
    def simulated(self) -> bool:
        return self.provider.simulated


def connect(settings: Settings, *, offline: bool | None) -> Backend:
    """``offline=True``: in-process simulator. ``False``: the API (a key is required). ``None``: the API
    when ``ANTHROPIC_API_KEY`` is set, else the simulator.

    ``ANTHROPIC_BASE_URL`` redirects API traffic (e.g. to ``evalkit sim serve``); a simulator reached that
    way identifies itself by a response header and is reported as SIMULATED too.
    """
    api_key = os.environ.get("ANTHROPIC_API_KEY", "").strip()
    base_url = os.environ.get("ANTHROPIC_BASE_URL", "").strip() or None
    if offline is None:
        offline = not api_key
    if offline:
        from evalkit.sim import Simulator, simulator_state_dir  # noqa: PLC0415 - sklearn/starlette on demand

        private_dir(simulator_state_dir(settings))  # its billing ledger is evalkit's state: owner-only
        simulator = Simulator(settings)
        client = partial(make_client, api_key=SIMULATOR_KEY, base_url="http://simulator.evalkit.invalid",
                         max_retries=settings.max_retries, timeout_s=settings.request_timeout_s,
                         asgi_app=simulator.app)
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
