"""The facts sheet's rules as requests (tests/sim_cases.py), sent over HTTP to each target: the status,
error type and message the simulator gives must be the API's. A live failure here is a place where the
simulator and the API differ: fix evalkit/sim/validate.py (and the case), never the other way round."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from tests.conformance.conftest import Target
from tests.sim_cases import ACCEPTED, REJECTED, Case, body_for

pytestmark = pytest.mark.e2e


def send(target: Target, case: Case) -> httpx2.Response:
    headers = {"x-api-key": target.api_key, "anthropic-version": "2026-10-21",
               "content-type": "application/json", **case.headers}
    with httpx2.Client(base_url=target.base_url, timeout=120) as http:
        return http.post(case.path, content=json.dumps(body_for(case)), headers=headers)


def _where(target: Target, case: Case, body: Any) -> str:
    return (f"{target.name} answered {json.dumps(body)[:400]} to '{case.name}' ({case.source}); "
            "if this is the real API, the simulator differs here: fix evalkit/sim/validate.py and the case "
            "in tests/sim_cases.py")


@pytest.mark.parametrize("case", REJECTED, ids=[case.name for case in REJECTED])
def test_rejected(target: Target, case: Case) -> None:
    response = send(target, case)
    body = response.json()
    assert response.status_code == case.status, _where(target, case, body)
    assert body.get("type") == "error" and str(body.get("request_id", "")).startswith("req_"), body
    assert body["error"]["type"] == case.error_type, _where(target, case, body)
    assert case.message in body["error"]["message"], _where(target, case, body)


@pytest.mark.parametrize("case", ACCEPTED, ids=[case.name for case in ACCEPTED])
def test_accepted(target: Target, case: Case) -> None:
    response = send(target, case)
    assert response.status_code == 200, _where(target, case, response.text)
    assert response.headers.get("request-id", "").startswith("req_")
    if case.path == "/v1/messages":
        body = response.json()
        assert body["type"] == "message" and body["role"] == "assistant"
        for family in ("requests", "tokens", "input-tokens", "output-tokens"):
            assert f"anthropic-ratelimit-{family}-remaining" in response.headers, family
        if case.check_json and body["stop_reason"] == "end_turn":
            text = next(block["text"] for block in body["content"] if block["type"] == "text")
            assert isinstance(json.loads(text), dict)
