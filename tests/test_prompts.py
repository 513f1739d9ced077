"""Prompt templates: strict, sandboxed, located errors, and the exact request body."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.datasets import Sample
from evalkit.errors import TemplateError
from evalkit.prompts.render import PromptRenderer, build_request
from evalkit.spec import load_task

TASK = """\
name: demo
dataset: {path: data.jsonl, label_column: category}
prompt:
  system: |
    Pick one of {{ labels | join(', ') }}.
    {{ SYSTEM_EXTRA }}
  user: |
    Message:
    {{ USER_EXTRA }}
output:
  label_field: category
  labels: {billing: money, technical: bugs}
models: {candidate: claude-haiku-5-5, reference: claude-sonnet-5-5}
"""


def _renderer(tmp_path: Path, system_extra: str = "", user_extra: str = "{{ text }}") -> PromptRenderer:
    path = tmp_path / "task.yaml"
    path.write_text(TASK.replace("{{ SYSTEM_EXTRA }}", system_extra).replace("{{ USER_EXTRA }}", user_extra))
    return PromptRenderer(load_task(path))


def _sample(**fields: object) -> Sample:
    base = {"id": "s1", "text": "refund please", "category": "billing"}
    base.update(fields)
    return Sample(id="s1", text=str(base["text"]), label="billing", fields=base, input_hash="h")


def test_request_body_has_structured_output_and_static_system(tmp_path: Path) -> None:
    renderer = _renderer(tmp_path)
    prompt = renderer.render(_sample())
    request = build_request(renderer.task, "candidate", _sample(), prompt)
    assert request.params["model"] == "claude-haiku-5-5"
    assert request.params["system"] == [{"type": "text", "text": "Pick one of billing, technical."}]
    assert request.params["messages"][0]["content"][0]["text"] == "Message:\nrefund please"
    schema = request.params["output_config"]["format"]["schema"]
    assert schema["properties"]["category"]["enum"] == ["billing", "technical"]
    assert schema["required"] == ["category", "confidence", "escalate"]
    assert "temperature" not in request.params


def test_undefined_variable_in_user_template_names_file_line_and_columns(tmp_path: Path) -> None:
    renderer = _renderer(tmp_path, user_extra="{{ txet }}")
    with pytest.raises(TemplateError) as caught:
        renderer.render(_sample())
    message = str(caught.value)
    assert f"{tmp_path / 'task.yaml'}:9: prompt.user: 'txet' is undefined" in message
    assert "category, id, text" in message


def test_per_sample_field_in_system_prompt_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as caught:
        _renderer(tmp_path, system_extra="{{ text }}")
    assert "prompt.system" in str(caught.value) and "static, cached prefix" in str(caught.value)


def test_templates_are_sandboxed(tmp_path: Path) -> None:
    renderer = _renderer(tmp_path, user_extra="{{ text.__class__.__mro__ }}")
    with pytest.raises(TemplateError):
        renderer.render(_sample())


def test_syntax_error_is_located(tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as caught:
        _renderer(tmp_path, user_extra="{% if text %}no end")
    assert "template syntax error" in str(caught.value)
