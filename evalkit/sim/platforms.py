"""Claude on Amazon Bedrock and Google Vertex AI, as the simulator serves them.

The SDK's ``AsyncAnthropicBedrock`` and ``AsyncAnthropicVertex`` rewrite a Messages call before sending it
(``_prepare_options``): the model leaves the body for the URL, and the body carries ``anthropic_version``.
These routes accept exactly that, as strictly as the platforms do, and then answer with the same simulated
models as ``/v1/messages`` (one :func:`evalkit.sim.app.answer_message`):

* Bedrock ``POST /model/{modelId}/invoke``: a SigV4 ``Authorization`` (or a Bedrock API key as Bearer) is
  required, unsigned requests get 403 ``Missing Authentication Token``; ``anthropic_version`` must be
  ``bedrock-2023-05-31``; a ``model`` key in the body or an unknown model id is a 400 ValidationException.
  Errors use Bedrock's shape: ``{"message": …}`` and an ``x-amzn-ErrorType`` header.
* Vertex ``POST /v1/projects/{p}/locations/{r}/publishers/anthropic/models/{model}:rawPredict`` (and
  ``count-tokens:rawPredict``): a Bearer token is required (401 UNAUTHENTICATED in Google's error shape);
  ``anthropic_version`` must be ``vertex-2023-10-16``; an unknown model is 404 NOT_FOUND.

The model ids each platform knows are evalkit's built-in table (``evalkit/data/platforms.toml``), as the
platform's own catalogue: an id overridden wrongly in evalkit.toml is rejected here as it would be there.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from evalkit.config import builtin_model_ids
from evalkit.sim.tokens import request_input_tokens
from evalkit.sim.validate import Context, parse_betas
from evalkit.sim.wire import ApiError, api_id

BEDROCK_VERSION = "bedrock-2023-05-31"
VERTEX_VERSION = "vertex-2023-10-16"
#: Cross-Region inference profile prefixes Bedrock accepts in front of a model id.
_PROFILES = ("global.", "us.", "eu.", "apac.", "jp.", "au.", "us-gov.")
_SIGV4 = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[A-Z0-9]{16,128})/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z0-9-]+)/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})$")
#: Simulator error types (the Claude API's) -> Bedrock's exception names and statuses.
_BEDROCK_ERRORS = {
    "invalid_request_error": (400, "ValidationException"),
    "authentication_error": (403, "UnrecognizedClientException"),
    "permission_error": (403, "AccessDeniedException"),
    "not_found_error": (404, "ResourceNotFoundException"),
    "request_too_large": (413, "ValidationException"),
    "rate_limit_error": (429, "ThrottlingException"),
    "api_error": (500, "InternalServerException"),
    "overloaded_error": (503, "ServiceUnavailableException"),
    "timeout_error": (408, "ModelTimeoutException"),
}
_GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                  429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}

Answer = Callable[[Any, Any, Context, float, str], Awaitable[dict[str, Any]]]
JsonBody = Callable[[Request], Awaitable[tuple[Any, int]]]
Headers = Callable[[str], dict[str, str]]


class BedrockError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


class GoogleError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _reverse(platform: str) -> dict[str, str]:
    """Platform model id -> the simulator's (Claude API) model id."""
    return {platform_id: model for model, platform_id in builtin_model_ids(platform).items()}


def bedrock_model(model_id: str) -> str | None:
    """The simulated model a Bedrock model id (or cross-Region inference profile id) names."""
    for prefix in _PROFILES:
        if model_id.startswith(prefix):
            model_id = model_id[len(prefix):]
            break
    return _reverse("bedrock").get(model_id)


def vertex_model(name: str) -> str | None:
    return _reverse("vertex").get(name)


def check_sigv4(request: Request) -> None:
    """A request Bedrock would authenticate: a well-formed SigV4 signature for service ``bedrock`` whose
    credential scope is dated as its ``X-Amz-Date`` and that signs ``host`` and ``x-amz-date``; or a Bedrock
    API key as a Bearer token. (The signature's value cannot be checked without the caller's secret.)"""
    auth = request.headers.get("authorization", "")
    if not auth:
        raise BedrockError(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    if auth.startswith("Bearer "):
        if not auth[7:].strip():
            raise BedrockError(403, "UnrecognizedClientException", "The security token included in the "
                                                                   "request is invalid.")
        return
    match = _SIGV4.match(auth)
    if match is None:
        raise BedrockError(403, "IncompleteSignatureException",
                           "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
                           "parameters (AWS4-HMAC-SHA256).")
    amz_date = request.headers.get("x-amz-date", "")
    if not re.fullmatch(r"\d{8}T\d{6}Z", amz_date) or amz_date[:8] != match["date"]:
        raise BedrockError(403, "InvalidSignatureException",
                           "Date in Credential scope does not match the X-Amz-Date header.")
    if match["service"] != "bedrock":
        raise BedrockError(403, "InvalidSignatureException",
                           f"Credential should be scoped to correct service: 'bedrock', not "
                           f"'{match['service']}'.")
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        raise BedrockError(403, "InvalidSignatureException", "The request signature must sign 'host' and "
                                                             "'x-amz-date'.")


def _bedrock_response(error: BedrockError, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse({"message": error.message}, status_code=error.status,
                        headers={**headers, "x-amzn-ErrorType": f"{error.kind}:http://internal.amazon.com/"
                                                                "coral/com.amazon.bedrock/"})


def _google_response(error: GoogleError, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse({"error": {"code": error.status, "message": error.message,
                                   "status": _GOOGLE_STATUS.get(error.status, "UNKNOWN")}},
                        status_code=error.status, headers=headers)


def _platform_body(body: Any, version: str, *, model_allowed: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request_error", "body: Input should be a valid dictionary")
    if not model_allowed and "model" in body:
        raise ApiError(400, "invalid_request_error", "model: Extra inputs are not permitted (the model is "
                                                     "named in the URL)")
    given = body.get("anthropic_version")
    if given is None:
        raise ApiError(400, "invalid_request_error", "anthropic_version: Field required")
    if given != version:
        raise ApiError(400, "invalid_request_error",
                       f"anthropic_version: Input should be '{version}', got '{given}'")
    return {key: value for key, value in body.items() if key not in ("anthropic_version", "anthropic_beta")}


def platform_routes(state: Any, *, answer: Answer, json_body: JsonBody, headers: Headers,
                    clock: Callable[[], float],
                    guard: Callable[[Any], Any] = lambda handler: handler) -> list[Route]:
    """The Bedrock and Vertex routes of one simulator state (wired by :func:`evalkit.sim.app.create_app`;
    ``guard`` wraps each handler as the app's own are, so a simulator bug is a 500, not a dropped call)."""

    async def bedrock_invoke(request: Request) -> Response:
        request_id = api_id("req_")
        reply_headers = {**headers(request_id), "x-amzn-requestid": request_id}
        try:
            check_sigv4(request)
            arrived_at = clock()
            raw, _ = await json_body(request)
            model_id = request.path_params["model_id"]
            model = bedrock_model(model_id)
            if model is None:
                raise BedrockError(400, "ValidationException", "The provided model identifier is invalid.")
            body = _platform_body(raw, BEDROCK_VERSION, model_allowed=False)
            betas = raw.get("anthropic_beta") or []
            if not isinstance(betas, list):
                raise ApiError(400, "invalid_request_error", "anthropic_beta: Input should be a valid list")
            message = await answer(state, {"model": model, **body},
                                   Context(betas=parse_betas(",".join(map(str, betas)))), arrived_at,
                                   request.url.path)
        except BedrockError as error:
            return _bedrock_response(error, reply_headers)
        except ApiError as error:
            status, kind = _BEDROCK_ERRORS.get(error.error_type, (error.status, "ValidationException"))
            return _bedrock_response(BedrockError(status, kind, error.message),
                                     {**reply_headers, **error.headers})
        message.pop("_request_id", None)
        return JSONResponse(message, headers=reply_headers)

    async def vertex_predict(request: Request) -> Response:
        request_id = api_id("req_")
        reply_headers = headers(request_id)
        try:
            auth = request.headers.get("authorization", "")
            if not auth.startswith("Bearer ") or not auth[7:].strip():
                raise GoogleError(401, "Request is missing required authentication credential. Expected "
                                       "OAuth 2 access token, login cookie or other valid authentication "
                                       "credential.")
            name, _, method = request.path_params["model_call"].rpartition(":")
            if method != "rawPredict":
                raise GoogleError(404, f"Method '{method}' is not served for Anthropic models here "
                                       "(evalkit calls rawPredict).")
            arrived_at = clock()
            raw, _ = await json_body(request)
            if name == "count-tokens":
                body = _platform_body(raw, VERTEX_VERSION, model_allowed=True)
                model = vertex_model(str(body.get("model", "")))
                if model is None:
                    raise GoogleError(404, f"Publisher Model `{body.get('model')}` was not found.")
                body["model"] = model
                state.validate_message_body(body, Context(count_tokens=True))
                return JSONResponse({"input_tokens": request_input_tokens(body)}, headers=reply_headers)
            model = vertex_model(name)
            if model is None:
                p = request.path_params
                raise GoogleError(404, f"Publisher Model `projects/{p['project']}/locations/{p['region']}/"
                                       f"publishers/anthropic/models/{name}` was not found or your project "
                                       "does not have access to it.")
            body = _platform_body(raw, VERTEX_VERSION, model_allowed=False)
            message = await answer(state, {"model": model, **body}, Context(), arrived_at, request.url.path)
        except GoogleError as error:
            return _google_response(error, reply_headers)
        except ApiError as error:
            # Model-level errors come back in the Claude API's own shape through rawPredict.
            detail = {"type": error.error_type, "message": error.message}
            return JSONResponse({"type": "error", "error": detail, "request_id": request_id},
                                status_code=error.status,
                                headers={**reply_headers, **error.headers})
        message.pop("_request_id", None)
        return JSONResponse(message, headers=reply_headers)

    return [
        Route("/model/{model_id}/invoke", guard(bedrock_invoke), methods=["POST"]),
        Route("/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model_call}",
              guard(vertex_predict), methods=["POST"]),
    ]
