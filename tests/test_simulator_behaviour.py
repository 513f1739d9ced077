"""The simulator behaves as the models and the API do: schema-conformant answers, refusals, thinking
display, batches on their own clock (billed unpolled, canceling, best-effort cache hits that expire with
the TTL) and every rate-limit header family. Facts: docs/reference/anthropic-facts.md §2, §5, §7, §8."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import jsonschema
import pytest

from evalkit.config import load_settings
from evalkit.sim.app import Ledger, SimulatorState, create_app

pytestmark = pytest.mark.e2e

INVOICE_SCHEMA = {
    "type": "object",
    "properties": {
        "vendor": {"type": "string"},
        "invoice_number": {"type": "string"},
        "invoice_date": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "total": {"anyOf": [{"type": "number"}, {"type": "null"}]},
        "line_items": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["description", "amount"],
            "properties": {"description": {"type": "string"}, "amount": {"type": "number"}}}},
    },
    "required": ["vendor", "invoice_number", "invoice_date", "total", "line_items"],
    "additionalProperties": False,
}
LONG_SYSTEM = "You classify support messages into billing or technical. Answer with JSON. " * 60  # > 512 tok


def make_state(project: Path, tmp_path: Path, **simulator: Any) -> SimulatorState:
    settings = load_settings(project)
    return SimulatorState(settings.simulator.with_overrides(simulator), root=settings.root,
                          state_dir=tmp_path / "sim")


def client_for(state: SimulatorState) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key="k", base_url="http://sim.test", max_retries=0,
        http_client=anthropic.DefaultAsyncHttpxClient(transport=httpx2.ASGITransport(app=create_app(state))))


def create(state: SimulatorState, **params: Any) -> tuple[dict[str, Any], httpx2.Headers]:
    async def call() -> tuple[dict[str, Any], httpx2.Headers]:
        raw = await client_for(state).messages.with_raw_response.create(**params)
        await raw.parse()  # the SDK's own types accept it
        return raw.http_response.json(), raw.headers

    return asyncio.run(call())


def extraction(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "claude-haiku-5-5", "max_tokens": 2000, "thinking": {"type": "disabled"},
            "system": "Extract the invoice fields as JSON.",
            "messages": [{"role": "user", "content": f"Invoice:\n{text}"}],
            "output_config": {"format": {"type": "json_schema", "schema": INVOICE_SCHEMA}}, **extra}


def classification(text: str, model: str = "claude-haiku-5-5", **extra: Any) -> dict[str, Any]:
    schema = {"type": "object", "additionalProperties": False, "required": ["category"],
              "properties": {"category": {"type": "string", "enum": ["billing", "technical"]}}}
    return {"model": model, "max_tokens": 400, "thinking": {"type": "disabled"},
            "system": [{"type": "text", "text": LONG_SYSTEM,
                        "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            "messages": [{"role": "user", "content": text}],
            "output_config": {"format": {"type": "json_schema", "schema": schema}}, **extra}


# -- answers -------------------------------------------------------------------------------------------
def test_an_extraction_with_nothing_to_extract_still_matches_its_schema(project: Path,
                                                                       tmp_path: Path) -> None:
    state = make_state(project, tmp_path)
    message, _ = create(state, **extraction("Thank you for your order. We will be in touch."))
    answer = json.loads(message["content"][0]["text"])
    jsonschema.validate(answer, INVOICE_SCHEMA)  # before: "invoice_number": null against {type: string}
    assert answer["invoice_number"] == "" and isinstance(answer["vendor"], str)
    found, _ = create(state, **extraction("ACME Tools Ltd\nInvoice number: INV-2041\nTotal: $120.00"))
    parsed = json.loads(found["content"][0]["text"])
    jsonschema.validate(parsed, INVOICE_SCHEMA)
    assert parsed["invoice_number"] == "INV-2041" and parsed["total"] == 120.0


def test_refusals_at_the_configured_rate_are_200_billed_and_break_the_schema(project: Path,
                                                                            tmp_path: Path) -> None:
    state = make_state(project, tmp_path, refusal_rate=0.3)
    messages = [create(state, **classification(f"My invoice {i} shows a charge twice"))[0] for i in range(60)]
    refused = [m for m in messages if m["stop_reason"] == "refusal"]
    assert 8 <= len(refused) <= 30  # 30% of 60, binomial spread
    for message in refused:
        assert message["stop_details"] == {"type": "refusal", "category": None, "explanation": None}
        with pytest.raises(json.JSONDecodeError):
            json.loads(message["content"][-1]["text"])
        assert message["usage"]["output_tokens"] > 0
    assert len(Ledger.read(state.ledger.path)) == 60  # a refusal is billed
    again, _ = create(state, **classification("My invoice 0 shows a charge twice"))
    assert again["stop_reason"] == messages[0]["stop_reason"]  # the same request, the same decision


def test_thinking_display_is_honoured(project: Path, tmp_path: Path) -> None:
    state = make_state(project, tmp_path)
    shown, _ = create(state, **classification("refund please", max_tokens=4000,
                                              thinking={"type": "adaptive", "display": "summarized"}))
    hidden, _ = create(state, **classification("refund please", model="claude-sonnet-4-6", max_tokens=4000,
                                               thinking={"type": "adaptive", "display": "omitted"}))
    assert shown["content"][0]["type"] == "thinking" and shown["content"][0]["thinking"]
    assert hidden["content"][0]["type"] == "thinking" and hidden["content"][0]["thinking"] == ""


# -- batches -------------------------------------------------------------------------------------------
def _batch(state: SimulatorState, bodies: list[dict[str, Any]]) -> str:
    async def call() -> str:
        batch = await client_for(state).messages.batches.create(requests=[  # type: ignore[arg-type]
            {"custom_id": f"r{i}", "params": body} for i, body in enumerate(bodies)])
        return batch.id

    return asyncio.run(call())


def _retrieve(state: SimulatorState, batch_id: str) -> Any:
    return asyncio.run(client_for(state).messages.batches.retrieve(batch_id))


def _usages(state: SimulatorState, batch_id: str) -> list[dict[str, Any]]:
    return [entry["usage"] for entry in Ledger.read(state.ledger.path) if entry["batch_id"] == batch_id]


def test_a_batch_is_processed_and_billed_on_its_own_clock_without_being_polled(project: Path,
                                                                              tmp_path: Path) -> None:
    state = make_state(project, tmp_path, batch_delay_s=0.3)
    batch_id = _batch(state, [classification(f"ticket {i}: error 500 on login") for i in range(5)])
    assert _usages(state, batch_id) == []
    deadline = time.monotonic() + 20
    while len(_usages(state, batch_id)) < 5:  # nobody retrieves it: the simulator's timer processes it
        assert time.monotonic() < deadline, "the batch was never processed"
        time.sleep(0.1)
    assert all(usage["service_tier"] == "batch" for usage in _usages(state, batch_id))
    assert _retrieve(state, batch_id).processing_status == "ended"


def test_a_batchs_api_version_decides_whether_its_items_may_carry_a_temperature(project: Path,
                                                                                tmp_path: Path) -> None:
    """Facts §0.3 / §4: under 2023-06-01 Haiku 5.5 takes temperature at its default (1.0) and refuses
    other values; under 2026-10-21 any temperature is "Extra inputs are not permitted"."""
    state = make_state(project, tmp_path, batch_delay_s=0)
    bodies = [classification("refund please", temperature=1), classification("refund please", temperature=0)]

    async def run(version: str) -> dict[str, Any]:
        client = client_for(state).with_options(default_headers={"anthropic-version": version})
        batch = await client.messages.batches.create(requests=[  # type: ignore[arg-type]
            {"custom_id": f"r{i}", "params": body} for i, body in enumerate(bodies)])
        state.clock.advance(1)
        state.batches.process_due()
        return {item.custom_id: item.result async for item in await client.messages.batches.results(batch.id)}

    legacy, current = asyncio.run(run("2023-06-01")), asyncio.run(run("2026-10-21"))
    assert legacy["r0"].type == "succeeded"
    assert legacy["r1"].type == "errored" and "deprecated for this model" in legacy["r1"].error.error.message
    assert all(r.type == "errored" for r in current.values())
    assert "temperature: Extra inputs are not permitted" in current["r0"].error.error.message


def test_a_canceled_batch_goes_through_canceling_and_bills_only_what_ran(project: Path,
                                                                         tmp_path: Path) -> None:
    state = make_state(project, tmp_path, batch_delay_s=100, batch_cancel_delay_s=30)
    batch_id = _batch(state, [classification(f"ticket {i}: my card was charged") for i in range(40)])
    state.clock.advance(50)  # half the batch's processing time has passed
    canceled = asyncio.run(client_for(state).messages.batches.cancel(batch_id))
    assert canceled.processing_status == "canceling" and canceled.cancel_initiated_at is not None
    assert _retrieve(state, batch_id).processing_status == "canceling"
    state.clock.advance(31)
    state.batches.process_due()
    ended = _retrieve(state, batch_id)
    assert ended.processing_status == "ended" and ended.results_url
    counts = ended.request_counts
    assert counts.succeeded == 20 and counts.canceled == 20 and counts.processing == 0
    assert len(_usages(state, batch_id)) == 20  # canceled requests are not billed


def _hits(state: SimulatorState, batch_id: str) -> int:
    return sum(1 for usage in _usages(state, batch_id) if usage["cache_read_input_tokens"] > 0)


def _warm_then_main(state: SimulatorState, size: int, *, gap_s: float) -> str:
    warm = _batch(state, [classification("warm-up: my invoice is wrong")])
    state.clock.advance(2)
    state.batches.process_due()
    assert _usages(state, warm)[0]["cache_creation"]["ephemeral_1h_input_tokens"] > 512
    state.clock.advance(gap_s)
    main = _batch(state, [classification(f"ticket {i}: the export fails") for i in range(size)])
    state.clock.advance(2)
    state.batches.process_due()
    return main


@pytest.mark.parametrize("rate", [0.3, 0.7, 1.0])
def test_cache_hits_inside_a_batch_are_best_effort_at_the_configured_rate(project: Path, tmp_path: Path,
                                                                         rate: float) -> None:
    state = make_state(project, tmp_path, batch_delay_s=1, batch_cache_hit_rate=rate)
    main = _warm_then_main(state, 200, gap_s=60)
    observed = _hits(state, main) / 200
    assert abs(observed - rate) <= 0.1, observed
    misses = [u for u in _usages(state, main) if u["cache_read_input_tokens"] == 0]
    assert all(u["cache_creation"]["ephemeral_1h_input_tokens"] > 512 for u in misses)  # a miss pays a write


def test_a_main_batch_that_starts_after_the_1h_warm_up_entry_expired_misses(project: Path,
                                                                           tmp_path: Path) -> None:
    fresh = make_state(project, tmp_path / "fresh", batch_delay_s=1, batch_cache_hit_rate=1.0)
    assert _hits(fresh, _warm_then_main(fresh, 16, gap_s=60)) == 16
    late = make_state(project, tmp_path / "late", batch_delay_s=1, batch_cache_hit_rate=1.0)
    main = _warm_then_main(late, 16, gap_s=3601)  # one parallel wave, after the 1 h TTL ran out
    assert _hits(late, main) == 0
    assert all(u["cache_creation_input_tokens"] > 512 for u in _usages(late, main))


# -- rate limits ---------------------------------------------------------------------------------------
FAMILIES = ("requests", "tokens", "input-tokens", "output-tokens")


def test_every_rate_limit_header_family_is_sent_and_counts_down(project: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit.sim.clock import SimClock

    # The buckets refill on the simulator's clock: hold it still, or a slow machine refills the one
    # request taken between the two calls (4,000 a minute is one every 15 ms).
    frozen = time.time()
    monkeypatch.setattr(SimClock, "time", lambda self: frozen)
    state = make_state(project, tmp_path)
    _, first = create(state, **classification("the app crashes"))
    _, second = create(state, **classification("the app crashes again"))
    for family in FAMILIES:
        for part in ("limit", "remaining", "reset"):
            assert f"anthropic-ratelimit-{family}-{part}" in first, (family, part)
        assert first[f"anthropic-ratelimit-{family}-reset"].endswith("Z")  # RFC 3339
    remaining = "anthropic-ratelimit-requests-remaining"
    assert int(second[remaining]) < int(first[remaining])
    assert int(second["anthropic-ratelimit-output-tokens-remaining"]) < 400_000
    assert not any(name.startswith("anthropic-priority-") for name in first)


def test_priority_tier_headers_when_configured(project: Path, tmp_path: Path) -> None:
    state = make_state(project, tmp_path, **{"rate_limits.priority_tier": True})
    _, headers = create(state, **classification("the app crashes"))
    for family in ("input-tokens", "output-tokens"):
        for part in ("limit", "remaining", "reset"):
            assert f"anthropic-priority-{family}-{part}" in headers


def test_an_exhausted_bucket_is_a_429_with_retry_after(project: Path, tmp_path: Path) -> None:
    state = make_state(project, tmp_path, **{"rate_limits.requests_per_minute": 2})
    create(state, **classification("one"))
    create(state, **classification("two"))
    with pytest.raises(anthropic.RateLimitError) as caught:
        create(state, **classification("three"))
    response = caught.value.response
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    state.clock.advance(60)  # the bucket refills
    create(state, **classification("four"))
    assert len(Ledger.read(state.ledger.path)) == 3  # the 429 was not billed
