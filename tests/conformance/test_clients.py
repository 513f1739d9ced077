"""Third-party clients' structured-output calls against each target, succeeding or failing exactly as the
facts sheet says the API does (§1.2, §7):

* the plain SDK: ``messages.parse(output_format=Model)`` sends ``output_config.format`` with the SDK's
  ``transform_schema`` applied — accepted; a raw schema with ``minLength`` — 400;
* pydantic-ai: ``NativeOutput`` (``output_config.format`` through ``client.beta.messages``) — accepted,
  and the answer validates against the model (a schema-breaking answer fails pydantic-ai's validation);
* litellm: ``response_format`` json_schema becomes the deprecated top-level ``output_format`` with the
  beta header ``structured-outputs-2025-11-13`` — still accepted during the transition period.
"""

from __future__ import annotations

import asyncio
import json
import os

import anthropic
import pytest
from pydantic import BaseModel

from tests.conformance.conftest import Target

pytestmark = pytest.mark.e2e
MODEL = "claude-haiku-5-5"
PROMPT = ("Route this support message to a queue and say whether it is urgent: "
          "'I was charged twice for my invoice this month.'")


class Ticket(BaseModel):
    queue: str
    urgent: bool


def test_sdk_parse_with_a_pydantic_model_is_accepted(target: Target) -> None:
    with anthropic.Anthropic(api_key=target.api_key, base_url=target.base_url, max_retries=0) as client:
        message = client.messages.parse(model=MODEL, max_tokens=2000, output_format=Ticket,
                                        messages=[{"role": "user", "content": PROMPT}])
    assert message.stop_reason in ("end_turn", "refusal", "max_tokens")
    if message.stop_reason == "end_turn":
        assert isinstance(message.parsed_output, Ticket)


def test_sdk_create_with_a_schema_outside_the_subset_is_a_400(target: Target) -> None:
    schema = {"type": "object", "additionalProperties": False, "required": ["queue"],
              "properties": {"queue": {"type": "string", "minLength": 3}}}
    with (anthropic.Anthropic(api_key=target.api_key, base_url=target.base_url, max_retries=0) as client,
          pytest.raises(anthropic.BadRequestError) as caught):
        client.messages.create(model=MODEL, max_tokens=500, messages=[{"role": "user", "content": PROMPT}],
                               output_config={"format": {"type": "json_schema", "schema": schema}})
    assert caught.value.status_code == 400
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "minLength" in caught.value.body["error"]["message"]


def test_pydantic_ai_native_output(target: Target) -> None:
    from pydantic_ai import Agent, NativeOutput
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.providers.anthropic import AnthropicProvider

    async def ask() -> Ticket:
        async with anthropic.AsyncAnthropic(api_key=target.api_key, base_url=target.base_url) as client:
            model = AnthropicModel(MODEL, provider=AnthropicProvider(anthropic_client=client))
            result = await Agent(model, output_type=NativeOutput(Ticket)).run(PROMPT)
            return result.output

    assert isinstance(asyncio.run(ask()), Ticket)


def test_litellm_json_schema_response_format(target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline: litellm's bundled tables
    monkeypatch.setenv("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
    import litellm

    response = litellm.completion(
        model=f"anthropic/{MODEL}", api_base=target.base_url, api_key=target.api_key, max_tokens=2000,
        messages=[{"role": "user", "content": PROMPT}], num_retries=0,
        response_format={"type": "json_schema", "json_schema": {"name": "ticket", "strict": True,
                                                                "schema": Ticket.model_json_schema()}})
    Ticket.model_validate(json.loads(response.choices[0].message.content))
    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
