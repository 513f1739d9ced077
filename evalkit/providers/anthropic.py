"""The Anthropic Messages API adapter: the only module that talks to the ``anthropic`` SDK.

It uses the official ``AsyncAnthropic`` client unchanged, for the real API and for evalkit's simulator
alike (the simulator is reached either over HTTP or in-process through an ASGI transport). SDK
exceptions become :class:`evalkit.errors.ProviderError` subclasses whose messages never include secrets.

The two calls that are billed are sent exactly once per call, without the SDK's retries:

* ``messages.create`` (:meth:`AnthropicProvider.generate`): the Messages API has no idempotency key, so a
  retry after a timeout or a lost connection can pay twice. :mod:`evalkit.providers.execute` retries
  instead, where it can count each such retry and keep the concurrency limit across them;
* ``messages.batches.create`` (:meth:`AnthropicProvider.submit_batch`): a retried create can make a second
  batch of the same requests; :mod:`evalkit.providers.batching` finds out what happened instead.

Everything else (token counts, batch status, lists and results) is free and idempotent: the SDK retries it.

The same provider calls Claude on Amazon Bedrock and Google Vertex AI through the SDK's own
``AsyncAnthropicBedrock`` / ``AsyncAnthropicVertex`` clients (:func:`make_platform_client`): evalkit's model
ids are mapped to the platform's, the platform's ``anthropic_version`` goes in the body, and batches are
not offered (those clients have no batch API; see docs/platforms.md).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from evalkit.errors import AuthError, ModelNotFoundError, ProviderError
from evalkit.prompts.render import ModelRequest
from evalkit.providers.base import BatchInfo, BatchItemResult, ModelResponse, Provider
from evalkit.tokens import count_tokens as estimate_tokens
from evalkit.wire import SIMULATOR_HEADER

if TYPE_CHECKING:
    import anthropic


def _sdk() -> Any:
    """The ``anthropic`` module, imported on first use: a run answered from the response cache never
    pays for importing the SDK (about a third of evalkit's import time)."""
    import anthropic  # noqa: PLC0415

    return anthropic


def _httpx() -> Any:
    import httpx2  # noqa: PLC0415

    return httpx2

DEFAULT_BASE_URL = "https://api.anthropic.com"
#: The body's ``anthropic_version`` each platform requires (AWS and Google docs). The SDK 2.15 Bedrock and
#: Vertex clients default it to the Claude API's header version (2026-10-21), which the platforms' docs do
#: not list: evalkit sends the documented value explicitly.
PLATFORM_VERSIONS = {"bedrock": "bedrock-2023-05-31", "vertex": "vertex-2023-10-16"}
PLATFORM_NAMES = {"anthropic": "Claude API", "bedrock": "Amazon Bedrock", "vertex": "Google Vertex AI"}
_SETUP_HINTS = {
    "bedrock": "set AWS credentials the botocore way (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
               "`aws sso login`, an instance role) or AWS_BEARER_TOKEN_BEDROCK, and the region in "
               "evalkit.toml [bedrock] region or AWS_REGION; `pip install 'evalkit[bedrock]'` for boto3",
    "vertex": "run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS, or "
              "EVALKIT_VERTEX_ACCESS_TOKEN), and the project/region in evalkit.toml [vertex] project_id / "
              "region or ANTHROPIC_VERTEX_PROJECT_ID / CLOUD_ML_REGION; `pip install 'evalkit[vertex]'` "
              "for google-auth",
}
#: Messages parameters that count_tokens accepts (it has no max_tokens, metadata, stop_sequences…).
_COUNT_TOKENS_PARAMS = frozenset({"model", "messages", "system", "thinking", "tools", "tool_choice",
                                  "output_config", "cache_control", "speed"})
log = logging.getLogger(__name__)


def known_model_ids() -> tuple[str, ...]:
    """The model ids this version of the SDK knows (its ``Model`` literal), for "did you mean" hints."""
    from typing import get_args  # noqa: PLC0415

    def strings(hint: Any) -> list[str]:  # Union[Literal[...], str] or a bare Literal
        return [hint] if isinstance(hint, str) else [name for arg in get_args(hint) for name in strings(arg)]

    return tuple(dict.fromkeys(strings(_sdk().types.Model)))


#: The SDK's own default timeout (``_httpx().Timeout(600, connect=5.0)``) and how it sizes a non-streaming
#: request: an hour for 128,000 output tokens (``_calculate_nonstreaming_timeout``).
SDK_DEFAULT_TIMEOUT_S = 600.0
SDK_SECONDS_PER_OUTPUT_TOKEN = 3600 / 128_000


def request_timeout(max_tokens: int, *, floor_s: float = SDK_DEFAULT_TIMEOUT_S,
                    per_output_token_s: float = SDK_SECONDS_PER_OUTPUT_TOKEN) -> float:
    """Seconds to wait for one answer: at least ``floor_s``, more for a request that may write more."""
    return max(floor_s, per_output_token_s * max(max_tokens, 0))


class AnthropicProvider(Provider):
    supports_batch = True

    def __init__(self, client: anthropic.AsyncAnthropic | None = None, *, endpoint: str,
                 simulated: bool = False, timeout_s: float = SDK_DEFAULT_TIMEOUT_S,
                 timeout_per_output_token_s: float = SDK_SECONDS_PER_OUTPUT_TOKEN,
                 connect: Callable[[], anthropic.AsyncAnthropic] | None = None,
                 platform: str = "anthropic", model_ids: Mapping[str, str] | None = None) -> None:
        """``client``, or ``connect``: a factory called when the first request is sent (so a run the
        response cache answers imports neither the SDK nor, offline, the simulator's app).

        ``platform`` bedrock/vertex: the client is the SDK's platform client, ``model_ids`` maps
        evalkit's model ids to the platform's, and batches are not offered."""
        if (client is None) == (connect is None):
            raise TypeError("give exactly one of client and connect")
        self.platform = platform
        self.model_ids = dict(model_ids or {})
        self.supports_batch = platform == "anthropic"
        self._connect = connect
        self._client_or_none = client
        self._once_or_none: anthropic.AsyncAnthropic | None = None
        self.endpoint = endpoint
        self.simulated = simulated
        self.timeout_s = timeout_s
        self.timeout_per_output_token_s = timeout_per_output_token_s

    @property
    def _client(self) -> anthropic.AsyncAnthropic:
        if self._client_or_none is None:
            assert self._connect is not None
            self._client_or_none = self._connect()
        return self._client_or_none

    @property
    def _once(self) -> anthropic.AsyncAnthropic:
        """The client for billed calls: never retried by the SDK."""
        if self._once_or_none is None:
            self._once_or_none = self._client.with_options(max_retries=0)
        return self._once_or_none

    @property
    def client(self) -> anthropic.AsyncAnthropic:
        return self._client

    def timeout_for(self, request: ModelRequest) -> float:
        return request_timeout(int(request.params.get("max_tokens") or 0), floor_s=self.timeout_s,
                               per_output_token_s=self.timeout_per_output_token_s)

    def platform_model(self, model: str) -> str:
        """The id ``model`` has on this provider's platform (the Claude API: itself)."""
        if self.platform == "anthropic":
            return model
        mapped = self.model_ids.get(model)
        if mapped is None:
            name = PLATFORM_NAMES[self.platform]
            raise ModelNotFoundError(
                f"evalkit has no {name} model id for '{model}'",
                hint=f'add it to evalkit.toml:\n      [{self.platform}.models]\n      "{model}" = "…"\n'
                     f"    (known: {', '.join(sorted(self.model_ids))})")
        return mapped

    def _params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The request as this platform's client takes it: its model id, its body ``anthropic_version``."""
        if self.platform == "anthropic":
            return dict(params)
        return {**params, "model": self.platform_model(str(params["model"])),
                "extra_body": {"anthropic_version": PLATFORM_VERSIONS[self.platform]}}

    def _setup_error(self, exc: Exception, model: str) -> ProviderError:
        """A platform client that could not sign or authenticate (no credentials, region, extra)."""
        name = PLATFORM_NAMES[self.platform]
        return AuthError(f"cannot call {name} for model '{model}': {type(exc).__name__}: {exc}",
                         hint=_SETUP_HINTS.get(self.platform))

    async def generate(self, request: ModelRequest) -> ModelResponse:
        """One attempt, no SDK retry (see the module docstring), with a timeout sized to the request."""
        seconds = self.timeout_for(request)
        started = time.perf_counter()
        params = self._params(request.params)
        try:
            raw = await self._once.messages.with_raw_response.create(
                **params, timeout=_httpx().Timeout(seconds, connect=min(10.0, seconds)))
            # The body as JSON, once. The SDK's parse() would build its Message model on top, but without
            # strict response validation (evalkit's clients never set it) that model is constructed
            # unchecked: about a third of the client's CPU per answer, for nothing evalkit reads. The
            # simulator's tests check that the SDK's own types accept every body it sends.
            body: dict[str, Any] = json.loads(await raw.read())
        except _sdk().APIError as exc:
            error = map_sdk_error(exc, model=request.model, timeout_s=seconds, platform=self.platform)
            log.debug("messages.create %s for %s/%s failed: %s", request.model, request.role,
                      request.sample_id, error.message,
                      extra={"request_id": error.request_id, "status": error.status})
            raise error from None
        except (RuntimeError, ValueError, ImportError) as exc:
            if self.platform == "anthropic":
                raise
            raise self._setup_error(exc, request.model) from None
        except Exception as exc:  # botocore / google-auth credential errors have no common base here
            if self.platform == "anthropic" or not type(exc).__module__.startswith(("botocore", "google")):
                raise
            raise self._setup_error(exc, request.model) from None
        simulated = self.simulated or SIMULATOR_HEADER in raw.headers
        if simulated:
            self.simulated = True
        log.debug("messages.create %s for %s/%s: %s in %.0f ms (%d retries)", request.model, request.role,
                  request.sample_id, body.get("stop_reason"), 1000 * (time.perf_counter() - started),
                  raw.retries_taken, extra={"request_id": raw.request_id})
        return ModelResponse(message=body, request_id=raw.request_id, simulated=simulated,
                             extra={"retries": raw.retries_taken})

    async def count_tokens(self, request: ModelRequest) -> int:
        """The platform's count where it has one (Claude API, Vertex); Bedrock's SDK client has none
        ("Token counting is not supported in Bedrock yet"): a local estimate there."""
        if self.platform == "bedrock":
            self.platform_model(request.model)  # an unmapped model is still an error
            return estimate_tokens(str(request.params.get("system") or "")) + estimate_tokens(
                json.dumps(request.params.get("messages") or [], ensure_ascii=False))
        params = self._params({k: v for k, v in request.params.items() if k in _COUNT_TOKENS_PARAMS})
        try:
            counted = await self._client.messages.count_tokens(**params)
        except _sdk().APIError as exc:
            raise map_sdk_error(exc, model=request.model, platform=self.platform) from None
        log.debug("count_tokens %s: %d input tokens", request.model, counted.input_tokens,
                  extra={"request_id": counted._request_id})
        return int(counted.input_tokens)

    # -- Message Batches (client.messages.batches) -------------------------------------------------
    async def submit_batch(self, items: list[tuple[str, dict[str, Any]]]) -> BatchInfo:
        """One create call, no SDK retry: after an error the batch may exist or not (see batching)."""
        requests = [{"custom_id": custom_id, "params": params} for custom_id, params in items]
        # A create that times out leaves its outcome unknown: give it the SDK's own ample timeout.
        seconds = max(self.timeout_s, SDK_DEFAULT_TIMEOUT_S)
        try:
            raw = await self._once.messages.batches.with_raw_response.create(
                requests=requests, timeout=_httpx().Timeout(seconds, connect=10.0))  # type: ignore[arg-type]
            batch = await raw.parse()
        except _sdk().APIError as exc:
            raise map_sdk_error(exc, model=_models_of(items)) from None
        if SIMULATOR_HEADER in raw.headers:
            self.simulated = True
        log.debug("messages.batches.create: batch %s with %d requests (%s)", batch.id, len(items),
                  _models_of(items), extra={"request_id": raw.request_id, "batch_id": batch.id})
        return _batch_info(batch)

    async def get_batch(self, batch_id: str) -> BatchInfo:
        try:
            batch = await self._client.messages.batches.retrieve(batch_id)
        except _sdk().APIError as exc:
            raise map_sdk_error(exc, model="(batch)", batch_id=batch_id) from None
        info = _batch_info(batch)
        log.debug("messages.batches.retrieve: batch %s %s %s", batch_id, info.status, info.counts,
                  extra={"request_id": batch._request_id, "batch_id": batch_id})
        return info

    async def list_batches(self, limit: int = 100) -> list[BatchInfo]:
        try:
            page = await self._client.messages.batches.list(limit=limit)
        except _sdk().APIError as exc:
            raise map_sdk_error(exc, model="(batch)") from None
        log.debug("messages.batches.list: %d batches", len(page.data))
        return [_batch_info(batch) for batch in page.data]

    async def cancel_batch(self, batch_id: str) -> BatchInfo:
        try:
            return _batch_info(await self._client.messages.batches.cancel(batch_id))
        except _sdk().APIError as exc:
            raise map_sdk_error(exc, model="(batch)", batch_id=batch_id) from None

    async def batch_results(self, batch_id: str) -> AsyncIterator[BatchItemResult]:
        log.debug("messages.batches.results: reading batch %s", batch_id, extra={"batch_id": batch_id})
        try:
            decoder = await self._client.messages.batches.results(batch_id)
            async for line in decoder:
                result = line.result
                if result.type == "succeeded":
                    yield BatchItemResult(line.custom_id, "succeeded",
                                          message=result.message.to_dict(mode="json"))
                elif result.type == "errored":
                    error = result.error.error
                    yield BatchItemResult(line.custom_id, "errored", error_type=error.type,
                                          error_message=error.message, request_id=result.error.request_id)
                else:
                    yield BatchItemResult(line.custom_id, result.type)
        except _sdk().APIError as exc:
            raise map_sdk_error(exc, model="(batch)", batch_id=batch_id) from None

    async def aclose(self) -> None:
        if self._client_or_none is not None:  # never connected: nothing to close
            await self._client_or_none.close()


def _models_of(items: list[tuple[str, dict[str, Any]]]) -> str:
    return ", ".join(sorted({str(params.get("model")) for _, params in items}))


def _batch_info(batch: Any) -> BatchInfo:
    counts = batch.request_counts
    return BatchInfo(
        id=batch.id, status=batch.processing_status, created_at=batch.created_at,
        counts={"processing": counts.processing, "succeeded": counts.succeeded, "errored": counts.errored,
                "canceled": counts.canceled, "expired": counts.expired},
    )


def _api_message(exc: anthropic.APIStatusError) -> str:
    """The error's message: the Claude API's and Vertex's ``error.message``, Bedrock's ``message``."""
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return exc.message


def _not_sent() -> tuple[type[BaseException], ...]:
    """Transport failures that happen before a request is sent: it cannot have been billed."""
    httpx2 = _httpx()
    return (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout, httpx2.UnsupportedProtocol)
#: Gateway answers that may come after the upstream did the work (and billed it).
_GATEWAY_STATUSES = frozenset({502, 504})


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _retry_after(headers: Any) -> float | None:
    """``retry-after-ms`` (ms), else ``retry-after`` (seconds), as the SDK reads them."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            value = float(headers.get(name)) / scale
        except (TypeError, ValueError):
            continue
        if value > 0:
            return min(value, 3600.0)
    return None


def map_sdk_error(exc: anthropic.APIError, *, model: str, batch_id: str | None = None,
                  timeout_s: float | None = None, platform: str = "anthropic") -> ProviderError:
    """Translate an SDK exception into an evalkit error a user can act on."""
    error = _map_sdk_error(exc, model=model, batch_id=batch_id, timeout_s=timeout_s)
    if platform != "anthropic":
        name = PLATFORM_NAMES[platform]
        error.message = error.message.replace("the API", name)
        if isinstance(error, AuthError):
            error.hint = _SETUP_HINTS[platform]
        elif isinstance(error, ModelNotFoundError):
            error.hint = (f"check the model id mapping ([{platform}.models] in evalkit.toml, "
                          f"docs/platforms.md) and that the model is enabled for your account in {name}")
    return error


def _map_sdk_error(exc: anthropic.APIError, *, model: str, batch_id: str | None = None,
                   timeout_s: float | None = None) -> ProviderError:
    anthropic = _sdk()
    if batch_id is not None and isinstance(exc, anthropic.NotFoundError):
        return ProviderError(f"the API does not know batch {batch_id} (404): {_api_message(exc)}",
                             status=404,
                             hint="it may have been deleted, or belong to another workspace or key")
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        message = _api_message(exc)
        error_type = None
        if isinstance(exc.body, dict) and isinstance(exc.body.get("error"), dict):
            error_type = exc.body["error"].get("type")
        request_id = exc.request_id
        suffix = f" (request id {request_id})" if request_id else ""
        if status == 401:
            return AuthError(
                f"the API rejected the credentials (401 {error_type or 'authentication_error'}): "
                f"{message}{suffix}",
                status=status, error_type=error_type, request_id=request_id,
                hint="check ANTHROPIC_API_KEY, or run offline on the simulator with --offline",
            )
        if status == 403:
            return AuthError(
                f"the API key may not do this (403 {error_type or 'permission_error'}): {message}{suffix}",
                status=status, error_type=error_type, request_id=request_id,
            )
        if status == 404:
            return ModelNotFoundError(
                f"the API does not know model '{model}' "
                f"(404 {error_type or 'not_found_error'}: {message}){suffix}",
                status=status, error_type=error_type, request_id=request_id,
                hint="fix models.candidate / models.reference in the task file; current ids include "
                "claude-haiku-5-5, claude-sonnet-5-5, claude-opus-5-5",
            )
        retryable = status in (408, 409, 429) or status >= 500
        should_retry = exc.response.headers.get("x-should-retry")
        if should_retry in ("true", "false"):
            retryable = should_retry == "true"
        return ProviderError(
            (f"API error {status} {error_type or ''} for model '{model}': "
             f"{message}{suffix}").replace("  ", " "),
            status=status, error_type=error_type, request_id=request_id, retryable=retryable,
            maybe_billed=status in _GATEWAY_STATUSES, retry_after_s=_retry_after(exc.response.headers),
        )
    sent = not any(isinstance(cause, _not_sent()) for cause in _causes(exc))
    if isinstance(exc, anthropic.APITimeoutError):
        after = f" after {timeout_s:g} s" if timeout_s is not None else ""
        return ProviderError(f"request to model '{model}' timed out{after}", retryable=True,
                             maybe_billed=sent, timed_out=sent,
                             hint="raise request_timeout_s in evalkit.toml (a request that times out may "
                                  "still be answered and billed), or lower the concurrency")
    if isinstance(exc, anthropic.APIConnectionError):
        return ProviderError(f"cannot reach the API for model '{model}': {exc.message}", retryable=True,
                             maybe_billed=sent, hint="check the network or ANTHROPIC_BASE_URL")
    return ProviderError(f"API call for model '{model}' failed: {exc.message}")


def make_client(
    *,
    api_key: str,
    base_url: str | None,
    max_retries: int,
    timeout_s: float,
    asgi_app: Any = None,
) -> anthropic.AsyncAnthropic:
    """An ``AsyncAnthropic`` client; ``asgi_app`` routes it in-process (to the simulator), no sockets."""
    anthropic, httpx2 = _sdk(), _httpx()
    http_client = None
    if asgi_app is not None:
        http_client = anthropic.DefaultAsyncHttpxClient(transport=httpx2.ASGITransport(app=asgi_app))
    return anthropic.AsyncAnthropic(
        api_key=api_key,
        base_url=base_url,
        max_retries=max_retries,
        timeout=timeout_s,
        http_client=http_client,
    )


def make_platform_client(
    platform: str,
    *,
    region: str,
    max_retries: int,
    timeout_s: float,
    base_url: str | None = None,
    project_id: str | None = None,
    aws_profile: str | None = None,
    aws_keys: tuple[str, str] | None = None,
    api_key: str | None = None,
    access_token: str | None = None,
    asgi_app: Any = None,
) -> Any:
    """The SDK's ``AsyncAnthropicBedrock`` or ``AsyncAnthropicVertex``, with its usual credential chain:
    botocore's (SigV4; or ``AWS_BEARER_TOKEN_BEDROCK``) for Bedrock, google-auth's application default
    credentials (or ``access_token``) for Vertex. ``aws_keys`` are explicit keys and ``api_key`` an
    explicit Bedrock API key (the simulator's placeholders); ``asgi_app`` routes the client in-process, as
    :func:`make_client` does."""
    anthropic, httpx2 = _sdk(), _httpx()
    http_client = None
    if asgi_app is not None:
        http_client = anthropic.DefaultAsyncHttpxClient(transport=httpx2.ASGITransport(app=asgi_app))
    if platform == "bedrock":
        keys: dict[str, Any] = {}
        if api_key is not None:
            keys = {"api_key": api_key}
        elif aws_keys is not None:
            keys = {"aws_access_key": aws_keys[0], "aws_secret_key": aws_keys[1]}
        elif aws_profile:
            keys = {"aws_profile": aws_profile}
        return anthropic.AsyncAnthropicBedrock(aws_region=region, base_url=base_url, max_retries=max_retries,
                                               timeout=timeout_s, http_client=http_client, **keys)
    if platform == "vertex":
        extra: dict[str, Any] = {"project_id": project_id} if project_id else {}
        return anthropic.AsyncAnthropicVertex(region=region, access_token=access_token, base_url=base_url,
                                              max_retries=max_retries, timeout=timeout_s,
                                              http_client=http_client, **extra)
    raise ValueError(f"unknown platform {platform!r}")


def default_client() -> anthropic.AsyncAnthropic:
    """A client configured from the environment, as the SDK does it (``ANTHROPIC_API_KEY`` and friends)."""
    anthropic = _sdk()
    return anthropic.AsyncAnthropic()
