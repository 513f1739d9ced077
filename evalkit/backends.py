"""Choosing where requests go: the real Anthropic API, an ``evalkit sim serve`` URL, or the in-process
simulator. All three go through the same official SDK client (:mod:`evalkit.providers.anthropic`)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from evalkit.config import Settings
from evalkit.errors import AuthError, UsageError
from evalkit.logs import redact_url
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
        from evalkit.sim import Simulator  # noqa: PLC0415 - sklearn/starlette load only when needed

        simulator = Simulator(settings)
        client = make_client(api_key=SIMULATOR_KEY, base_url="http://simulator.evalkit.invalid",
                             max_retries=settings.max_retries, timeout_s=settings.request_timeout_s,
                             asgi_app=simulator.app)
        provider = AnthropicProvider(client, endpoint=simulator.endpoint, simulated=True)
        why = "--offline" if api_key else "no ANTHROPIC_API_KEY is set"
        log.info("backend: the in-process simulator (%s)", why)
        return Backend(provider, "simulator", f"built-in offline simulator ({why})")
    if not api_key:
        raise AuthError(
            "ANTHROPIC_API_KEY is not set, and this run was asked to use the API (--online)",
            hint="export ANTHROPIC_API_KEY=… (any value works for `evalkit sim serve`), or use --offline",
        )
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise UsageError(f"ANTHROPIC_BASE_URL must start with http:// or https://, got {base_url!r}")
    client = make_client(api_key=api_key, base_url=base_url, max_retries=settings.max_retries,
                         timeout_s=settings.request_timeout_s)
    endpoint = (base_url or DEFAULT_BASE_URL).rstrip("/")
    shown = redact_url(endpoint)  # never a user:password@ part in messages
    log.info("backend: the Anthropic API at %s (max_retries %d, timeout %g s)", shown, settings.max_retries,
             settings.request_timeout_s)
    return Backend(AnthropicProvider(client, endpoint=endpoint), "api", f"Anthropic API at {shown}")
