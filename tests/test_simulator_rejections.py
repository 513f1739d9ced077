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
