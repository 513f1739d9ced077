"""The simulator rejects what the API rejects — status, error type, message, error-body shape — and accepts
what it accepts. Table-driven from docs/reference/anthropic-facts.md (section numbers in each case).

The same cases run against the real API in tests/conformance/ when a key is given.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx2
import pytest

from evalkit.config import load_settings
from evalkit.schema_rules import schema_violations
from evalkit.sim.app import Ledger, SimulatorState, create_app
from tests.conftest import RECORDED
from tests.sim_cases import ACCEPTED, REJECTED, SCHEMA_CASES, Case, body_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def state(project: Path, tmp_path: Path) -> SimulatorState:
    settings = load_settings(project)
    return SimulatorState(settings.simulator, root=settings.root, state_dir=tmp_path / "sim")


def post(state: SimulatorState, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
         ) -> httpx2.Response:
    async def call() -> httpx2.Response:
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(state)),
                                      base_url="http://sim.test") as http:
            return await http.post(path, json=body, headers={
                "x-api-key": "k", "anthropic-version": "2026-10-21", **(headers or {})})

    return asyncio.run(call())


@pytest.mark.parametrize("case", REJECTED, ids=[case.name for case in REJECTED])
def test_the_api_rejects_it_and_so_does_the_simulator(state: SimulatorState, case: Case) -> None:
    response = post(state, case.path, body_for(case), case.headers)
    body = response.json()
    assert response.status_code == case.status, body
    recorded = json.loads((RECORDED / "error_400_invalid_request.response.json").read_text())
    assert set(body) == set(recorded) == {"type", "error", "request_id"}
    assert body["type"] == "error" and body["request_id"].startswith("req_")
    assert set(body["error"]) == {"type", "message"}
    assert body["error"]["type"] == case.error_type
    assert case.message in body["error"]["message"], body["error"]["message"]
    assert response.headers["request-id"] == body["request_id"]
    assert Ledger.read(state.ledger.path) == []  # a rejected request is never billed


@pytest.mark.parametrize("case", ACCEPTED, ids=[case.name for case in ACCEPTED])
def test_the_api_accepts_it_and_so_does_the_simulator(state: SimulatorState, case: Case) -> None:
    response = post(state, case.path, body_for(case), case.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    if case.path == "/v1/messages":
        assert body["type"] == "message" and body["stop_reason"] in ("end_turn", "max_tokens")
        if case.check_json:
            text = next(block["text"] for block in body["content"] if block["type"] == "text")
            assert isinstance(json.loads(text), dict)


def test_the_recorded_effort_error_is_reproduced_word_for_word(state: SimulatorState) -> None:
    recorded = json.loads((RECORDED / "error_400_invalid_request.response.json").read_text())
    case = next(c for c in REJECTED if c.name == "effort xhigh on sonnet 4.6")
    response = post(state, case.path, body_for(case))
    assert response.json()["error"] == recorded["error"]


def test_schema_rejections_are_the_schema_lints_own_rules(state: SimulatorState) -> None:
    """One implementation of the subset: whatever schema_rules says is the simulator's 400 message."""
    schemas = [case.body["output_config"]["format"]["schema"] for case in SCHEMA_CASES]
    assert len(schemas) >= 12
    for schema in schemas:
        violation = schema_violations(schema)[0]
        response = post(state, "/v1/messages", body_for(Case("x", {
            "output_config": {"format": {"type": "json_schema", "schema": schema}}})))
        message = response.json()["error"]["message"]
        assert message.startswith("output_config.format.schema: ") and violation.message in message


def test_a_bad_item_in_a_batch_errors_alone_with_the_same_message(state: SimulatorState) -> None:
    bad = next(c for c in REJECTED if c.name == "numeric constraint minimum")
    requests = [{"custom_id": "good", "params": body_for(Case("g", {}))},
                {"custom_id": "bad", "params": body_for(bad)}]
    created = post(state, "/v1/messages/batches", {"requests": requests})
    assert created.status_code == 200  # items are validated asynchronously, after the batch has run
    state.clock.advance(60)
    state.batches.process_due()
    results = {line["custom_id"]: line["result"] for line in
               map(json.loads, state.batches.results(created.json()["id"]).decode().splitlines())}
    assert results["good"]["type"] == "succeeded"
    assert results["bad"]["type"] == "errored"
    error = results["bad"]["error"]
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    direct = post(state, "/v1/messages", body_for(bad)).json()["error"]["message"]
    assert error["error"]["message"] == direct
    assert [entry["custom_id"] for entry in Ledger.read(state.ledger.path)] == ["good"]


def _batch_results(state: SimulatorState, requests: list[dict[str, Any]],
                   headers: dict[str, str] | None = None) -> dict[str, Any]:
    created = post(state, "/v1/messages/batches", {"requests": requests}, headers)
    assert created.status_code == 200, created.text
    state.clock.advance(60)
    state.batches.process_due()
    return {line["custom_id"]: line["result"] for line in
            map(json.loads, state.batches.results(created.json()["id"]).decode().splitlines())}


def test_what_batches_alone_refuse_and_allow(state: SimulatorState) -> None:
    """Facts §2: no stream, speed or max_tokens 0 in a batch; max_tokens up to 300k on Sonnet/Opus 4.6+ with
    the output-300k-2026-03-24 beta header, on batches only."""
    big = {**body_for(Case("b", {})), "model": "claude-sonnet-5-5", "max_tokens": 200_000}
    requests = [{"custom_id": "stream", "params": {**body_for(Case("s", {})), "stream": True}},
                {"custom_id": "speed", "params": {**body_for(Case("f", {})), "speed": "fast"}},
                {"custom_id": "prewarm", "params": {**body_for(Case("p", {})), "max_tokens": 0}},
                {"custom_id": "big", "params": big}]
    plain = _batch_results(state, requests)
    assert {custom_id: result["type"] for custom_id, result in plain.items()} == {
        "stream": "errored", "speed": "errored", "prewarm": "errored", "big": "errored"}
    assert "128000, which is the maximum" in plain["big"]["error"]["error"]["message"]
    extended = _batch_results(state, [{"custom_id": "big", "params": big}],
                              {"anthropic-beta": "output-300k-2026-03-24"})
    assert extended["big"]["type"] == "succeeded"
    direct = post(state, "/v1/messages", big, {"anthropic-beta": "output-300k-2026-03-24"})
    assert direct.status_code == 400  # real time: the beta does not apply
