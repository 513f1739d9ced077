"""The simulator speaks the real wire format: the official SDK talks to it unchanged, and its bodies
have the shape of the real API's recorded responses (tests/fixtures/recorded/, see its PROVENANCE.md)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from evalkit.config import load_settings
from evalkit.sim.app import Ledger, SimulatorState, create_app
from evalkit.tokens import count_tokens
from tests.conftest import RECORDED

pytestmark = pytest.mark.e2e

SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"type": "string",
                     "enum": ["billing", "technical", "account", "feature_request", "general"]},
        "confidence": {"type": "number"},
        "escalate": {"type": "boolean"},
        "reason": {"type": "string"},
    },
    "required": ["category", "confidence", "escalate", "reason"],
    "additionalProperties": False,
}
SYSTEM = ("Route the message to one queue: billing, technical, account, feature_request or general. "
          "Answer with JSON.")


@pytest.fixture
def sim(project: Path, tmp_path: Path) -> tuple[anthropic.AsyncAnthropic, SimulatorState]:
    settings = load_settings(project)
    state = SimulatorState(settings.simulator, root=settings.root, state_dir=tmp_path / "sim")
    client = anthropic.AsyncAnthropic(
        api_key="test-key", base_url="http://sim.test", max_retries=0,
        http_client=anthropic.DefaultAsyncHttpxClient(transport=httpx2.ASGITransport(app=create_app(state))),
    )
    return client, state


def _params(model: str = "claude-haiku-5-5", text: str = "I was charged twice for my invoice this month",
            **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": model, "max_tokens": 300,
        "system": [{"type": "text", "text": SYSTEM}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
        "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
    }
    params.update(extra)
    return params


def _recorded(name: str) -> dict[str, Any]:
    return json.loads((RECORDED / name).read_text())


def test_message_has_the_recorded_shape(sim: tuple[anthropic.AsyncAnthropic, SimulatorState]) -> None:
    client, _ = sim
    raw = asyncio.run(client.messages.with_raw_response.create(**_params(thinking={"type": "disabled"})))
    body = raw.http_response.json()
    recorded = _recorded("messages_haiku-4-5_plain.response.json")
    assert set(recorded) <= set(body)
    assert set(recorded["usage"]) == set(body["usage"])
    assert set(recorded["usage"]["cache_creation"]) == set(body["usage"]["cache_creation"])
    assert body["id"].startswith("msg_011C") and raw.request_id and raw.request_id.startswith("req_011C")
    assert body["usage"]["service_tier"] == "standard"
    message = asyncio.run(raw.parse())  # the SDK's own types accept it
    assert message.content[0].type == "text"
    answer = json.loads(message.content[0].text)
    assert set(answer) == {"category", "confidence", "escalate", "reason"}
    assert 0 <= answer["confidence"] <= 1


def test_adaptive_thinking_is_on_by_default_for_haiku_5_5(
        sim: tuple[anthropic.AsyncAnthropic, SimulatorState]) -> None:
    client, _ = sim
    message = asyncio.run(client.messages.create(**_params(max_tokens=4000)))
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "" and message.content[0].signature  # 5.5: text omitted by default
    answer_tokens = count_tokens(message.content[1].text)
    assert message.usage.output_tokens > answer_tokens + 10  # the thought is billed as output
    off = asyncio.run(client.messages.create(**_params(max_tokens=4000, thinking={"type": "disabled"})))
    assert [block.type for block in off.content] == ["text"]
    assert off.usage.output_tokens < message.usage.output_tokens


def test_thinking_grows_with_effort_and_counts_toward_max_tokens(
        sim: tuple[anthropic.AsyncAnthropic, SimulatorState]) -> None:
    client, _ = sim
    texts = [f"Please help, ticket {i}: the invoice shows a charge I did not expect" for i in range(12)]

    def thought(effort: str) -> float:
        outputs = [asyncio.run(client.messages.create(**_params(
            "claude-sonnet-5-5", text=text, max_tokens=20000,
            output_config={"format": {"type": "json_schema", "schema": SCHEMA}, "effort": effort})))
            for text in texts]
        return sum(m.usage.output_tokens for m in outputs) / len(outputs)

    low, high = thought("low"), thought("high")
    assert high > 3 * low  # effort scales the thought
    cut = asyncio.run(client.messages.create(**_params("claude-sonnet-5-5", max_tokens=300)))  # default: high
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 300
    assert [block.type for block in cut.content] == ["thinking"]


def test_dated_alias_resolves_in_the_model_field(
        sim: tuple[anthropic.AsyncAnthropic, SimulatorState]) -> None:
    client, _ = sim
    message = asyncio.run(client.messages.create(**_params(model="claude-haiku-4-5")))
    assert message.model == "claude-haiku-4-5-20251001"


def test_unknown_model_is_the_apis_404(sim: tuple[anthropic.AsyncAnthropic, SimulatorState]) -> None:
    client, state = sim
    with pytest.raises(anthropic.NotFoundError) as caught:
        asyncio.run(client.messages.create(**_params(model="claude-does-not-exist")))
    recorded = _recorded("error_404_not_found_count_tokens.response.json")
    body = caught.value.body
    assert set(body) == set(recorded)
    assert body["error"] == {"type": "not_found_error", "message": "model: claude-does-not-exist"}
    assert caught.value.request_id.startswith("req_")
    assert sum(state.ledger.counts.values()) == 0  # errors are not billed


def test_removed_sampling_parameters_are_400(sim: tuple[anthropic.AsyncAnthropic, SimulatorState]) -> None:
    client, _ = sim
    with pytest.raises(anthropic.BadRequestError) as caught:
        asyncio.run(client.messages.create(**_params(), extra_body={"temperature": 0}))
    assert caught.value.body["error"]["message"] == "temperature: Extra inputs are not permitted"


def test_unknown_keys_are_400(sim: tuple[anthropic.AsyncAnthropic, SimulatorState]) -> None:
    client, _ = sim
    with pytest.raises(anthropic.BadRequestError) as caught:
        asyncio.run(client.messages.create(**_params(), extra_body={"frequency_penalty": 1}))
    assert caught.value.body["error"]["type"] == "invalid_request_error"


def test_missing_credentials_are_401(sim: tuple[anthropic.AsyncAnthropic, SimulatorState]) -> None:
    _, state = sim

    async def call() -> httpx2.Response:
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(state)),
                                      base_url="http://sim.test") as http:
            return await http.post("/v1/messages", json=_params(),
                                   headers={"anthropic-version": "2026-10-21"})

    response = asyncio.run(call())
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_count_tokens_agrees_with_billed_input(sim: tuple[anthropic.AsyncAnthropic, SimulatorState]) -> None:
    client, _ = sim
    params = _params(thinking={"type": "disabled"})
    counted = asyncio.run(client.messages.count_tokens(
        model=params["model"], system=params["system"], messages=params["messages"],
        output_config=params["output_config"]))
    message = asyncio.run(client.messages.create(**params))
    assert counted.input_tokens == message.usage.input_tokens > 0


def test_max_tokens_truncates_and_says_so(sim: tuple[anthropic.AsyncAnthropic, SimulatorState]) -> None:
    client, _ = sim
    message = asyncio.run(client.messages.create(**_params(max_tokens=8, thinking={"type": "disabled"})))
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens <= 8
    with pytest.raises(json.JSONDecodeError):
        json.loads(message.content[0].text)


def test_every_success_is_billed_once_in_the_ledger(
        sim: tuple[anthropic.AsyncAnthropic, SimulatorState]) -> None:
    client, state = sim

    async def three() -> None:
        await asyncio.gather(*(client.messages.create(**_params(text=f"refund please, order {i}"))
                               for i in range(3)))

    asyncio.run(three())
    entries = Ledger.read(state.ledger.path)
    assert len(entries) == 3
    assert {entry["model"] for entry in entries} == {"claude-haiku-5-5"}
    assert all("test-key" not in json.dumps(entry) for entry in entries)


def test_answers_are_computed_and_reproducible(sim: tuple[anthropic.AsyncAnthropic, SimulatorState]) -> None:
    client, _ = sim

    def label(text: str, model: str) -> str:
        message = asyncio.run(client.messages.create(**_params(model=model, text=text,
                                                               thinking={"type": "disabled"})))
        return json.loads(message.content[0].text)["category"]

    text = "The Jira integration throws error 500 every time we sync tickets"
    assert label(text, "claude-sonnet-5-5") == "technical"
    assert label(text, "claude-sonnet-5-5") == label(text, "claude-sonnet-5-5")


def test_streaming_has_the_recorded_event_shape(sim: tuple[anthropic.AsyncAnthropic, SimulatorState]) -> None:
    client, _ = sim
    recorded = json.loads(
        (RECORDED / "messages_stream_cache_write_1h_sonnet-4-6.sse_events.json").read_text())

    async def collect() -> tuple[list[str], anthropic.types.Message]:
        kinds = []
        async with client.messages.stream(**_params(thinking={"type": "disabled"})) as stream:
            async for event in stream:
                kinds.append(event.type)
            return kinds, await stream.get_final_message()

    kinds, final = asyncio.run(collect())
    raw_kinds = [e["type"] for e in recorded]
    assert kinds[0] == "message_start" and "message_delta" in kinds and kinds[-1] == "message_stop"
    assert {k for k in raw_kinds if k != "ping"} <= set(kinds) | {"ping"}
    streamed = json.loads(final.content[0].text)
    plain = asyncio.run(client.messages.create(**_params(thinking={"type": "disabled"})))
    assert streamed == json.loads(plain.content[0].text)  # same request, same answer, streamed or not
