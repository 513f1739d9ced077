"""Prompt rendering: task templates + a sample -> the exact Messages API request body.

Templates run in jinja2's immutable sandbox with ``StrictUndefined``: a template cannot call unsafe
methods or mutate data, and a missing variable is an error instead of an empty string. The system part
is rendered once from static variables only, because it is the cacheable prefix shared by every request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from evalkit.config import load_settings
from evalkit.datasets import Sample, static_attachments
from evalkit.errors import TemplateError
from evalkit.spec import OutputSpec, TaskSpec


@dataclass(frozen=True)
class RenderedPrompt:
    system: str
    user: str


#: The params of released requests, one shared dict per (model, max_tokens).
_RELEASED_PARAMS: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}


@dataclass(frozen=True, slots=True)  # slots: one per sample or call, all kept (issue 20)
class ModelRequest:
    """One Messages API call, as the exact JSON body sent (no stream flag, no secrets)."""

    sample_id: str
    role: str  # "candidate" | "reference"
    params: dict[str, Any]
    #: Repeat index: 0 for the normal call; 1, 2, … to deliberately ask the same request again
    #: (e.g. to measure the reference's self-agreement). Part of the cache key.
    replicate: int = 0
    #: The response-cache key of this request and its endpoint, once computed (see ``request_key``).
    key_memo: tuple[str, str] | None = field(default=None, init=False, compare=False, repr=False)
    #: Cut down by :meth:`released`: ``params`` holds only the model and max_tokens.
    is_released: bool = field(default=False, init=False, compare=False, repr=False)

    @property
    def model(self) -> str:
        return str(self.params["model"])

    def released(self) -> ModelRequest:
        """This request once answered: the model and max_tokens (what a run reads after its calls) and its
        key memo, without the rendered messages — the largest per-sample state a run kept to its end
        (~1.3 KB a sample; issue 22). Its key can then only be read from the memo, never recomputed."""
        if self.key_memo is None:
            raise ValueError("a request is released only after its response-cache key is computed")
        kept = tuple((name, self.params[name]) for name in ("model", "max_tokens") if name in self.params)
        params = _RELEASED_PARAMS.setdefault(kept, dict(kept))  # one dict for all alike: never changed
        slim = ModelRequest(sample_id=self.sample_id, role=self.role, params=params, replicate=self.replicate)
        object.__setattr__(slim, "key_memo", self.key_memo)
        object.__setattr__(slim, "is_released", True)
        return slim


def output_schema(output: OutputSpec) -> dict[str, Any]:
    """JSON Schema for the answer; used for structured outputs and to validate replies.

    No numeric bounds (minimum/maximum): structured outputs do not support them, so the confidence
    range is checked when the answer is parsed. Extraction tasks give their own schema; evalkit adds the
    confidence and escalate properties to it when the task asks for them.
    """
    if output.kind == "extraction" and output.json_schema is not None:
        schema = dict(output.json_schema)
        properties: dict[str, Any] = dict(schema.get("properties") or {})
        extra: dict[str, Any] = {}
        if output.confidence_field:
            extra[output.confidence_field] = {
                "type": "number", "description": "Probability from 0 to 1 that the extraction is right."}
        if output.escalate_field:
            extra[output.escalate_field] = {
                "type": "boolean", "description": "True if a stronger model or a human should check this."}
        properties.update(extra)
        required = list(dict.fromkeys([*(schema.get("required") or properties), *extra]))
        return {**schema, "type": "object", "properties": properties, "required": required,
                "additionalProperties": False}
    properties = {output.label_field: {"type": "string", "enum": output.label_names}}
    if output.confidence_field:
        properties[output.confidence_field] = {
            "type": "number",
            "description": "Probability from 0 to 1 that the label is correct.",
        }
    if output.escalate_field:
        properties[output.escalate_field] = {
            "type": "boolean",
            "description": "True if a stronger model or a human should handle this.",
        }
    for name, kind in output.fields.items():
        properties[name] = {"type": kind}
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


#: Template statements that read other templates: a task's templates have no files to read (no loader).
_LOADING = {nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "from … import",
            nodes.Extends: "extends"}


class PromptRenderer:
    """Compiles a task's templates once (for one role's prompt) and renders them per sample.

    ``include_dirs``: folders besides the task's own that ``prompt.include`` may read (default: the
    ``include_dirs`` of the task's evalkit.toml)."""

    def __init__(self, task: TaskSpec, role: str = "candidate",
                 include_dirs: list[Path] | None = None) -> None:
        self.task = task
        self.role = role
        prompt = task.prompt_for(role)
        self._keys = {"system": prompt.system_key, "user": prompt.user_key}
        self._env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False,
                                                  keep_trailing_newline=False)
        self._static: dict[str, Any] = {
            "labels": task.output.label_names,
            "label_descriptions": task.output.label_descriptions,
            "output_schema": output_schema(task.output),
            **prompt.variables,
            **_read_includes(task, prompt.include, include_dirs),
        }
        self._system_template = self._compile(prompt.system_key, prompt.system)
        self._user_template = self._compile(prompt.user_key, prompt.user)
        self.system = self._render_system()

    def _file_line(self, key: str, template_line: int | None) -> str:
        source = self.task.source
        if source is None:
            return str(self.task.task_file or "<task>")
        start = source.first_content_line(key)
        if start is None or template_line is None:
            return f"{source.path}:{source.line_of(key) or '?'}"
        return f"{source.path}:{start + template_line - 1}"

    def _compile(self, key: str, text: str) -> jinja2.Template:
        try:
            for node in self._env.parse(text).find_all(tuple(_LOADING)):
                raise TemplateError(
                    f"{self._file_line(key, node.lineno)}: {key}: {{% {_LOADING[type(node)]} %}} is not "
                    "supported: a task's templates cannot read other files",
                    hint="put the other file's text in a variable with prompt.include (read from the task's "
                         "folder) and write {{ name }} where it goes; macros can live in the template itself")
            return self._env.from_string(text)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"{self._file_line(key, exc.lineno)}: {key}: template syntax error: {exc.message}",
                hint="jinja2 syntax: {{ variable }}, {% if … %}…{% endif %}, {% for x in xs %}…{% endfor %}",
            ) from None

    def _render_system(self) -> str:
        try:
            return self._system_template.render(**self._static).strip()
        except jinja2.UndefinedError as exc:
            key = self._keys["system"]
            raise TemplateError(
                f"{self._file_line(key, _error_line(exc))}: {key}: {exc.message}",
                hint=(
                    "the system prompt is the static, cached prefix: it can use labels, label_descriptions, "
                    "output_schema and prompt.variables, not per-sample columns; move per-sample fields to "
                    "prompt.user"
                ),
            ) from None
        except jinja2.TemplateError as exc:
            key = self._keys["system"]
            raise TemplateError(f"{self._file_line(key, _error_line(exc))}: {key}: {exc}") from None

    def render(self, sample: Sample) -> RenderedPrompt:
        context = {**self._static, **sample.fields, "sample": sample.fields, "text": sample.text}
        key = self._keys["user"]
        try:
            user = self._user_template.render(**context).strip()
        except jinja2.UndefinedError as exc:
            columns = ", ".join(sorted(sample.fields))
            raise TemplateError(
                f"{self._file_line(key, _error_line(exc))}: {key}: {exc.message} (sample id={sample.id})",
                hint=f"per-sample variables are the dataset columns: {columns}",
            ) from None
        except jinja2.TemplateError as exc:
            raise TemplateError(
                f"{self._file_line(key, _error_line(exc))}: {key}: {exc} (sample id={sample.id})") from None
        if not user and not (sample.messages or sample.attachments):
            raise TemplateError(f"{key} rendered to an empty message for sample id={sample.id}",
                                hint="the API rejects empty user messages; include {{ text }}")
        return RenderedPrompt(system=self.system, user=user)


def _read_includes(task: TaskSpec, include: dict[str, tuple[str, str]],
                   include_dirs: list[Path] | None = None) -> dict[str, str]:
    """The ``prompt.include`` files' text. Each must be inside the task's folder or one of
    ``include_dirs`` (after resolving ``..`` and symbolic links): whatever is read is sent to the model."""
    if include_dirs is None:
        include_dirs = load_settings(task.base_dir).include_dirs if include else []
    roots = [task.base_dir.resolve(), *(Path(d).resolve() for d in include_dirs)]
    out = {}
    source = task.source
    for name, (key, relative) in include.items():
        where = f"{source.path}:{source.line_of(key) or '?'}" if source else "<task>"
        path = (task.base_dir / relative).resolve()
        if not any(path.is_relative_to(root) for root in roots):
            raise TemplateError(
                f"{where}: {key}: {relative} is outside the task's folder {roots[0]}"
                + (f" and the include_dirs {', '.join(map(str, roots[1:]))}" if roots[1:] else ""),
                hint="included text is sent to the model: move the file into the task's folder, or allow "
                     "its folder explicitly with include_dirs = [\"...\"] under [evalkit] in evalkit.toml")
        try:
            out[name] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise TemplateError(f"{where}: {key}: {path} is not UTF-8 text ({exc.reason})",
                                hint="save it as UTF-8") from None
        except OSError as exc:
            raise TemplateError(f"{where}: {key}: cannot read {path}: {exc.strerror}",
                                hint="paths are relative to the task file") from None
    return out


def _error_line(exc: Exception) -> int | None:
    """Line inside the template where rendering failed, from the traceback jinja2 rewrites."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


#: The parts of a request that are the same for every sample of a role, built once and shared, so a
#: 100k-sample run holds one copy of the system prompt blocks and the schema, not one per request.
_SharedKey = tuple[int, str, str | None, str | None]
_shared_parts: dict[_SharedKey, tuple[TaskSpec, list[dict[str, Any]], dict[str, Any] | None]] = {}


def _static_parts(task: TaskSpec, system: str, cache_ttl: str | None, effort: str | None
                  ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    key = (id(task), system, cache_ttl, effort)
    cached = _shared_parts.get(key)
    if cached is not None and cached[0] is task:  # the entry holds the task, so its id cannot be reused
        return cached[1], cached[2]
    if len(_shared_parts) > 64:
        _shared_parts.clear()
    system_block: dict[str, Any] = {"type": "text", "text": system}
    if cache_ttl is not None:
        system_block["cache_control"] = {"type": "ephemeral"} if cache_ttl == "5m" else \
            {"type": "ephemeral", "ttl": cache_ttl}
    output_config: dict[str, Any] | None = None
    if task.output.structured and task.output.kind != "text":
        output_config = {"format": {"type": "json_schema", "schema": output_schema(task.output)}}
    if effort is not None:
        output_config = {**(output_config or {}), "effort": effort}
    _shared_parts[key] = (task, [system_block], output_config)
    return [system_block], output_config


_static_docs: dict[tuple[int, str | None], tuple[TaskSpec, list[dict[str, Any]]]] = {}


def _static_document_blocks(task: TaskSpec, cache_ttl: str | None) -> list[dict[str, Any]]:
    """``input.static_documents`` as document blocks, the last one carrying the cache breakpoint: they
    open the first user turn, so the cached prefix is system + these documents (prompt-caching.md allows
    cache_control on document blocks). Built once per task; never mutate."""
    if not task.input.static_documents:
        return []
    key = (id(task), cache_ttl)
    cached = _static_docs.get(key)
    if cached is not None and cached[0] is task:
        return cached[1]
    if len(_static_docs) > 64:
        _static_docs.clear()
    blocks = [attachment.block() for attachment in static_attachments(task)]
    if cache_ttl is not None:
        blocks[-1] = {**blocks[-1], "cache_control": {"type": "ephemeral"} if cache_ttl == "5m"
                      else {"type": "ephemeral", "ttl": cache_ttl}}
    _static_docs[key] = (task, blocks)
    return blocks


def build_messages(task: TaskSpec, sample: Sample, user: str, *,
                   cache_ttl: str | None = None) -> list[dict[str, Any]]:
    """The request's ``messages``: the sample's conversation (or one user turn), the task's static
    documents first in the first turn (cacheable), the sample's documents and images in the last user turn
    before its text (Anthropic recommends documents before the question). Per-sample files never carry
    cache_control: they differ in every request."""
    text = [{"type": "text", "text": user}] if user else []
    files = [attachment.block() for attachment in sample.attachments]
    if sample.messages:
        messages = [{"role": m["role"], "content": list(m["content"])} for m in sample.messages]
        messages[-1]["content"] = [*files, *messages[-1]["content"], *text]
    else:
        messages = [{"role": "user", "content": [*files, *text]}]
    static = _static_document_blocks(task, cache_ttl)
    if static:
        messages[0]["content"] = [*static, *messages[0]["content"]]
    return messages


def build_request(task: TaskSpec, role: str, sample: Sample, prompt: RenderedPrompt,
                  *, cache_ttl: str | None = None, messages: list[dict[str, Any]] | None = None
                  ) -> ModelRequest:
    """The Messages API body for one model and one sample. ``cache_ttl`` puts a prompt-cache breakpoint
    on the static system block (``"5m"`` or ``"1h"``). ``messages``: another role's, built from the same
    prompt and cache TTL (shared, not copied: ~0.3 KB per sample, all kept until the record is built).
    Static and shared parts are shared objects: never mutate them."""
    settings = task.models.role(role)
    system_blocks, output_config = _static_parts(task, prompt.system, cache_ttl, settings.effort)
    if messages is None:
        messages = ([{"role": "user", "content": [{"type": "text", "text": prompt.user}]}]
                    if not task.input.used
                    else build_messages(task, sample, prompt.user, cache_ttl=cache_ttl))
    params: dict[str, Any] = {
        "model": settings.model,
        "max_tokens": settings.max_tokens,
        "system": system_blocks,
        "messages": messages,
    }
    if output_config is not None:
        params["output_config"] = output_config
    if settings.thinking != "default":
        params["thinking"] = {"type": settings.thinking}
    return ModelRequest(sample_id=sample.id, role=role, params=params)
