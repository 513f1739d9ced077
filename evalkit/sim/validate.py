"""What the simulated API rejects, and with which 400 — as strict as the facts say the real API is.

Source of every rule: docs/reference/anthropic-facts.md (§1.2 request shapes, §3 prompt caching, §4 model
differences, §7 the structured-outputs schema subset, §8 thinking and effort) and the SDK's request
types. Schemas are checked by :func:`evalkit.schema_rules.schema_violations`, the same rules evalkit's own
lint applies, so a schema is refused offline exactly when evalkit's lint refuses it.

Messages imitate the API's: request-shape errors read like its pydantic validation
(``"<path>: Input should be …"``, ``"<key>: Extra inputs are not permitted"``); schema errors start with
the offending field (``"output_config.format.schema: …"``). ``count_tokens`` validates shapes only: the API
counts tokens "without compilation", so a bad schema, a prefill or a too-large ``max_tokens`` pass there.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from evalkit import media
from evalkit.modelinfo import (
    EFFORTS,
    EXTENDED_BATCH_OUTPUT_BETA,
    effort_levels,
    max_output_tokens,
    supports_forced_tool_choice,
    supports_prefill,
)
from evalkit.schema_rules import schema_violations
from evalkit.sim import catalog
from evalkit.sim.wire import ApiError, invalid

#: Top-level keys of a Messages request (API 2026-10-21). Anything else is "Extra inputs are not permitted".
MESSAGE_KEYS = frozenset({
    "model", "messages", "max_tokens", "cache_control", "container", "diagnostics", "inference_geo",
    "metadata", "output_config", "service_tier", "speed", "stop_sequences", "stream", "system", "thinking",
    "tool_choice", "tools", "user_profile_id", "workspace_id",
})
COUNT_TOKENS_KEYS = frozenset({
    "model", "messages", "cache_control", "output_config", "output_format", "speed", "system", "thinking",
    "tool_choice", "tools",
})
#: The beta header under which the deprecated top-level ``output_format`` (JSON schema) is still accepted
#: "for a transition period" (facts §1.2, §7).
STRUCTURED_OUTPUTS_BETA = "structured-outputs-2025-11-13"
THINKING_TYPES = ("enabled", "disabled", "adaptive", "between_tools")
CACHE_TTLS = ("5m", "1h")
MIN_THINKING_BUDGET = 1024
MAX_BREAKPOINTS = 4
#: The API version the SDK 2.x sends; sampling parameters are gone in it (facts §0.3).
CURRENT_VERSION = "2026-10-21"
#: The older API version, still accepted (facts §5), under which sampling parameters still exist.
LEGACY_VERSION = "2023-06-01"
SAMPLING_KEYS = ("temperature", "top_p", "top_k")
#: Claude 4.7+ models (Opus 4.7+, Sonnet 5/5.5, Haiku 5.5, the 5.x families): under 2023-06-01 they reject
#: non-default sampling values, "independently of the API version" (facts §0.3, §4). The only documented
#: default is temperature 1.0; top_p and top_k have none (unset means off), so any value is non-default.
SAMPLING_DEPRECATED_MODELS = ("claude-opus-4-7*", "claude-opus-4-8*", "claude-opus-5*", "claude-sonnet-5*",
                              "claude-haiku-5*", "claude-fable-5*", "claude-mythos-5*")
#: Haiku 4.5 takes temperature or top_p, "never both" (facts §4).
ONE_SAMPLING_PARAM_MODELS = ("claude-haiku-4-5*",)
DEFAULT_TEMPERATURE = 1.0


def _quoted(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}" if len(quoted) > 1 else quoted[0]


def parse_betas(header: str | None) -> frozenset[str]:
    """The ``anthropic-beta`` header's comma-separated values."""
    return frozenset(part.strip() for part in (header or "").split(",") if part.strip())


class Context:
    """Where a body comes from: which endpoint, and under which beta headers."""

    def __init__(self, *, betas: frozenset[str] = frozenset(), count_tokens: bool = False,
                 batch: bool = False, api_version: str = CURRENT_VERSION) -> None:
        self.betas, self.count_tokens, self.batch = betas, count_tokens, batch
        self.api_version = api_version


def validate_message_body(body: Any, context: Context, tier_for: Callable[[str], object | None]) -> str:
    """Checks a Messages (or count_tokens) body; returns the resolved model id or raises :class:`ApiError`."""
    if not isinstance(body, dict):
        raise invalid("body: Input should be a valid dictionary")
    sampling = _check_sampling(body, context)
    keys = COUNT_TOKENS_KEYS if context.count_tokens else MESSAGE_KEYS
    if sampling:
        keys = keys | frozenset(sampling)
    # The deprecated top-level output_format is accepted with its beta header, as the API does during the
    # transition. Without the header it is what any other unknown key is: "Extra inputs are not permitted"
    # (the field belongs to the beta; only count_tokens lists it in its own signature).
    if STRUCTURED_OUTPUTS_BETA in context.betas:
        keys = keys | {"output_format"}
    for key in body:
        if key not in keys:
            raise invalid(f"{key}: Extra inputs are not permitted")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model: Field required")
    max_tokens = body.get("max_tokens")
    if not context.count_tokens:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            raise invalid("max_tokens: Field required" if max_tokens is None
                          else "max_tokens: Input should be a valid integer")
        if max_tokens < 0:
            raise invalid("max_tokens: Input should be greater than or equal to 0")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages: at least one message is required")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise invalid(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if isinstance(content, str):
            if not content and index == len(messages) - 1 and message["role"] == "user":
                raise invalid(f"messages.{index}: user messages must have non-empty content")
        elif not isinstance(content, list):
            raise invalid(f"messages.{index}.content: Input should be a valid string or list")
    media_blocks = _check_media_blocks(messages)
    _check_thinking(body.get("thinking"), max_tokens if not context.count_tokens else None)
    _check_cache_controls(body)
    schema_format = _check_output_config(body, context)
    _check_tools(body, context)
    resolved = catalog.resolve(model)
    if resolved is None:
        raise ApiError(404, "not_found_error", f"model: {model}")
    if tier_for(model) is None:
        raise invalid(f"model: {model} has no simulator tier; add it to [simulator.tiers] in evalkit.toml")
    _check_model_limits(body, resolved, context, json_outputs=schema_format)
    _check_media_limits(media_blocks, resolved)
    return resolved


def _check_sampling(body: dict[str, Any], context: Context) -> list[str]:
    """temperature / top_p / top_k (facts §0.3, §4): removed under API 2026-10-21 (400 "Extra inputs are
    not permitted", even at default values) and on count_tokens; under 2023-06-01 accepted in range, except
    non-default values on Claude 4.7+ models and temperature with top_p on Haiku 4.5. Returns the keys
    present (accepted)."""
    present = [key for key in SAMPLING_KEYS if key in body]
    if not present:
        return present
    if context.count_tokens or context.api_version != LEGACY_VERSION:
        raise invalid(f"{present[0]}: Extra inputs are not permitted")
    for key in ("temperature", "top_p"):
        value = body.get(key, 0.0)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise invalid(f"{key}: Input should be a valid number")
        if not 0.0 <= value <= 1.0:
            raise invalid(f"{key}: Input should be {'less' if value > 1 else 'greater'} than or equal to "
                          f"{1 if value > 1 else 0}")
    top_k = body.get("top_k", 0)
    if not isinstance(top_k, int) or isinstance(top_k, bool):
        raise invalid("top_k: Input should be a valid integer")
    if top_k < 0:
        raise invalid("top_k: Input should be greater than or equal to 0")
    model = body.get("model")
    resolved = catalog.resolve(model) if isinstance(model, str) else None
    if resolved is None:
        return present  # an unknown model is the 404 below
    if any(fnmatch.fnmatchcase(resolved, pattern) for pattern in SAMPLING_DEPRECATED_MODELS):
        for key in present:
            if key != "temperature" or body[key] != DEFAULT_TEMPERATURE:
                raise invalid(f"`{key}` is deprecated for this model.")
    if (any(fnmatch.fnmatchcase(resolved, pattern) for pattern in ONE_SAMPLING_PARAM_MODELS)
            and "temperature" in body and "top_p" in body):
        raise invalid("`temperature` and `top_p` cannot both be specified for this model. "
                      "Please use only one.")
    return present


_BLOCK_KEYS = {"image": {"type", "source", "cache_control"},
               "document": {"type", "source", "cache_control", "title", "context", "citations"}}
_SOURCE_TYPES = {"image": ("base64", "url", "file"), "document": ("base64", "url", "text", "content", "file")}


class _Media:
    """A checked image or document block: where it is, and what it holds."""

    def __init__(self, path: str, kind: str, pages: int = 0, width: int = 0, height: int = 0) -> None:
        self.path, self.kind, self.pages, self.width, self.height = path, kind, pages, width, height


def _check_media_blocks(messages: list[Any]) -> list[_Media]:
    """Shapes and contents of image and document blocks (vision.md, pdf-support.md): base64 that decodes,
    a supported media type that matches the bytes, a readable unencrypted PDF, an image within 10 MB and
    8000 px. URL and Files-API sources are refused: the simulator has neither the web nor a file store."""
    found: list[_Media] = []
    for m_index, message in enumerate(messages):
        content = message.get("content")
        for b_index, block in enumerate(content if isinstance(content, list) else []):
            kind = block.get("type") if isinstance(block, dict) else None
            if kind not in _BLOCK_KEYS:
                continue
            path = f"messages.{m_index}.content.{b_index}"
            for key in block:
                if key not in _BLOCK_KEYS[kind]:
                    raise invalid(f"{path}.{kind}.{key}: Extra inputs are not permitted")
            source = block.get("source")
            if not isinstance(source, dict):
                raise invalid(f"{path}.{kind}.source: Field required")
            kinds = _SOURCE_TYPES[kind]
            if source.get("type") not in kinds:
                raise invalid(f"{path}.{kind}.source.type: Input should be {_quoted(kinds)}")
            if source["type"] != "base64":
                if source["type"] in ("text", "content"):
                    found.append(_Media(path, kind))
                    continue
                raise invalid(f"{path}.{kind}.source.{source['type']}: the evalkit simulator cannot fetch "
                              f"{source['type']} sources; send the file as base64")
            found.append(_check_base64_source(source, kind, f"{path}.{kind}.source.base64"))
            found[-1].path = path
    return found


def _check_base64_source(source: dict[str, Any], kind: str, path: str) -> _Media:
    for key in source:
        if key not in ("type", "media_type", "data"):
            raise invalid(f"{path}.{key}: Extra inputs are not permitted")
    allowed = (media.PDF,) if kind == "document" else media.IMAGE_TYPES
    media_type = source.get("media_type")
    if media_type not in allowed:
        raise invalid(f"{path}.media_type: Input should be {_quoted(allowed)}")
    data = source.get("data")
    if not isinstance(data, str) or not data:
        raise invalid(f"{path}.data: Field required")
    if kind == "image" and len(data) > media.MAX_IMAGE_BASE64_BYTES:
        raise invalid(f"{path}: image exceeds {media.MAX_IMAGE_BASE64_BYTES // 2**20} MB maximum: "
                      f"{len(data)} bytes > {media.MAX_IMAGE_BASE64_BYTES} bytes")
    try:
        raw = media.decode_base64(data)
    except media.MediaError:
        raise invalid(f"{path}.data: Invalid base64 data") from None
    try:
        if kind == "document":
            if media.sniff(raw) != media.PDF:
                raise media.MediaError("not a PDF")
            return _Media(path, kind, pages=media.pdf_info(raw).pages)
        width, height = media.check_image(raw, str(media_type))
    except media.MediaError as exc:
        if kind == "document":
            raise invalid(f"{path}: The PDF specified was not valid.") from None
        raise invalid(f"{path}: {exc}") from None
    return _Media(path, kind, width=width, height=height)


def _check_media_limits(blocks: list[_Media], model: str) -> None:
    """Per-request limits: PDF pages and images (600, or 100 under a 1M context window), and the lower
    2000 px edge when a request holds more than 20 images (vision.md "Request limits")."""
    limit = media.page_limit(model)
    pages = sum(block.pages for block in blocks)
    if pages > limit:
        raise invalid(f"A maximum of {limit} PDF pages may be provided.")
    images = [block for block in blocks if block.kind == "image"]
    if len(images) > limit:
        raise invalid(f"Too many images: {len(images)} provided, the maximum is {limit}.")
    if len(images) > media.MANY_IMAGES:
        for image in images:
            if max(image.width, image.height) > media.MANY_IMAGES_EDGE:
                raise invalid(f"{image.path}.image.source.base64.data: At least one of the image dimensions "
                              f"exceed max allowed size for many-image requests: {media.MANY_IMAGES_EDGE} "
                              "pixels")


def _check_thinking(thinking: Any, max_tokens: int | None) -> None:
    if thinking is None:
        return
    if not isinstance(thinking, dict) or thinking.get("type") not in THINKING_TYPES:
        raise invalid(f"thinking.type: Input should be {_quoted(THINKING_TYPES)}")
    kind = thinking["type"]
    allowed = {"enabled": {"type", "budget_tokens", "display"}, "adaptive": {"type", "display"}}.get(kind,
                                                                                                   {"type"})
    for key in thinking:
        if key not in allowed:
            raise invalid(f"thinking.{kind}.{key}: Extra inputs are not permitted")
    if "display" in thinking and thinking["display"] not in (None, "summarized", "omitted"):
        raise invalid(f"thinking.{kind}.display: Input should be 'summarized' or 'omitted'")
    if kind != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if budget is None:
        raise invalid("thinking.enabled.budget_tokens: Field required")
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise invalid("thinking.enabled.budget_tokens: Input should be a valid integer")
    if budget < MIN_THINKING_BUDGET:
        raise invalid(f"thinking.enabled.budget_tokens: Input should be greater than or equal to "
                      f"{MIN_THINKING_BUDGET}")
    if max_tokens is not None and max_tokens <= budget:
        # SDK ThinkingConfigEnabledParam: "Must be ≥1024 and less than max_tokens".
        raise invalid("`max_tokens` must be greater than `thinking.budget_tokens`")


def _controls(body: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every ``cache_control`` of the request with its location, in prompt order (tools, system, messages)."""
    found: list[tuple[str, Any]] = []
    for index, tool in enumerate(body.get("tools") or []):
        if isinstance(tool, dict) and "cache_control" in tool:
            found.append((f"tools.{index}", tool["cache_control"]))
    if isinstance(body.get("system"), list):
        for index, block in enumerate(body["system"]):
            if isinstance(block, dict) and "cache_control" in block:
                found.append((f"system.{index}", block["cache_control"]))
    for m_index, message in enumerate(body.get("messages") or []):
        content = message.get("content") if isinstance(message, dict) else None
        for b_index, block in enumerate(content if isinstance(content, list) else []):
            if isinstance(block, dict) and "cache_control" in block:
                found.append((f"messages.{m_index}.content.{b_index}", block["cache_control"]))
    return found


def _check_cache_controls(body: dict[str, Any]) -> None:
    controls = _controls(body)
    if "cache_control" in body:
        controls.append(("", body["cache_control"]))  # automatic caching: the last cacheable block
    last_ttl, last_where = None, ""
    for where, control in controls:
        path = f"{where}.cache_control" if where else "cache_control"
        if control is None:
            continue
        if not isinstance(control, dict):
            raise invalid(f"{path}: Input should be a valid dictionary")
        for key in control:
            if key not in ("type", "ttl"):
                raise invalid(f"{path}.{key}: Extra inputs are not permitted")
        if control.get("type") != "ephemeral":
            raise invalid(f"{path}.type: Input should be 'ephemeral'")
        ttl = control.get("ttl", "5m")
        if ttl not in CACHE_TTLS:
            raise invalid(f"{path}.ttl: Input should be {_quoted(CACHE_TTLS)}")
        if where and ttl == "1h" and last_ttl == "5m":
            # Facts §3: "Mixing TTLs: 1 h entries must come before 5 m entries."
            raise invalid(f"{path}: a cache_control with ttl='1h' must not come after one with ttl='5m' "
                          f"(at {last_where}.cache_control)")
        if where:
            last_ttl, last_where = ttl, where
    count = sum(1 for _, control in controls if control is not None)
    if count > MAX_BREAKPOINTS:
        raise invalid(f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                      f"Found {count}.")


def _schema_problem(schema: Any, prefix: str) -> ApiError | None:
    violations = schema_violations(schema)
    if not violations:
        return None
    first = violations[0]
    where = f" (at {first.path})" if first.path else ""
    more = f"; and {len(violations) - 1} more" if len(violations) > 1 else ""
    return invalid(f"{prefix}: {first.message}{where}{more}")


def _check_format(fmt: Any, path: str, context: Context) -> bool:
    """A JSON output format: ``{"type": "json_schema", "schema": {...}}``. True when one is set."""
    if fmt is None:
        return False
    if not isinstance(fmt, dict):
        raise invalid(f"{path}: Input should be a valid dictionary")
    for key in fmt:
        if key not in ("type", "schema"):
            raise invalid(f"{path}.{key}: Extra inputs are not permitted")
    if fmt.get("type") != "json_schema":
        raise invalid(f"{path}.type: Input should be 'json_schema'")
    if "schema" not in fmt:
        raise invalid(f"{path}.schema: Field required")
    if not isinstance(fmt["schema"], dict):
        raise invalid(f"{path}.schema: Input should be a valid dictionary")
    if not context.count_tokens:  # token counting works "without compilation" (facts §7)
        problem = _schema_problem(fmt["schema"], f"{path}.schema")
        if problem is not None:
            raise problem
    return True


def _check_output_config(body: dict[str, Any], context: Context) -> bool:
    """Shape of ``output_config`` (and the deprecated ``output_format``); True when JSON outputs are on."""
    config = body.get("output_config")
    json_outputs = False
    if config is not None:
        if not isinstance(config, dict):
            raise invalid("output_config: Input should be a valid dictionary")
        for key in config:
            if key not in ("effort", "format"):
                raise invalid(f"output_config.{key}: Extra inputs are not permitted")
        effort = config.get("effort")
        if effort is not None and effort not in EFFORTS:
            raise invalid(f"output_config.effort: Input should be {_quoted(EFFORTS)}")
        json_outputs = _check_format(config.get("format"), "output_config.format", context)
    if body.get("output_format") is not None:
        if json_outputs:
            raise invalid("output_format: cannot be used together with output_config.format; "
                          "use output_config.format only")
        json_outputs = _check_format(body["output_format"], "output_format", context)
    return json_outputs


def _check_tools(body: dict[str, Any], context: Context) -> None:
    tools = body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise invalid("tools: Input should be a valid list")
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise invalid(f"tools.{index}: Input should be a valid dictionary")
        # Strict tools are grammar-constrained and share the JSON outputs schema limits (facts §7).
        if tool.get("strict") is True and not context.count_tokens:
            problem = _schema_problem(tool.get("input_schema"), f"tools.{index}.input_schema")
            if problem is not None:
                raise problem


def _check_model_limits(body: dict[str, Any], model: str, context: Context, *, json_outputs: bool) -> None:
    """The model-dependent rules (facts §0.6, §0.7, §4, §8)."""
    effort = (body.get("output_config") or {}).get("effort")
    if effort is not None:
        levels = effort_levels(model)
        if not levels:
            raise invalid("This model does not support the effort parameter.")
        if effort not in levels:
            raise invalid(f"This model does not support effort level '{effort}'. "
                          f"Supported levels: {', '.join(sorted(levels))}.")
    if context.count_tokens:
        return
    limit = max_output_tokens(model, extended_batch=context.batch
                              and EXTENDED_BATCH_OUTPUT_BETA in context.betas)
    if body["max_tokens"] > limit:
        raise invalid(f"max_tokens: {body['max_tokens']} > {limit}, which is the maximum allowed number of "
                      f"output tokens for {model}")
    last = body["messages"][-1]
    if last.get("role") == "assistant":
        if json_outputs:
            raise invalid("Prefilling the assistant message is not supported with structured outputs "
                          "(output_config.format); the conversation must end with a user turn")
        if not supports_prefill(model):
            raise invalid(f"{model} does not support assistant message prefill: the conversation must end "
                          "with a user turn")
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("tool", "any") and not supports_forced_tool_choice(
            model):
        raise invalid(f"tool_choice: forced tool use (type '{choice['type']}') is not supported on {model}; "
                      "use tool_choice auto, or structured outputs (output_config.format)")
