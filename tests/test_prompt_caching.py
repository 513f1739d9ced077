"""Prompt caching: the simulator's cache follows the documented rules, evalkit places breakpoints and
warms the cache, the lint finds cache-busters, and the summary accounts for reads, writes and savings."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.config import load_settings
from evalkit.prompts.lint import lint_task
from evalkit.sim.app import SimulatorState, create_app
from evalkit.sim.prompt_cache import PromptCache
from evalkit.spec import load_task
from tests.conftest import RECORDED
from tests.conftest import prepared_task as prepare
from tests.test_batches import configure, summary

LONG = "Please explain what Python is and its main use cases. " * 120  # ~1,300 tokens


@pytest.fixture
def client(project: Path, tmp_path: Path) -> anthropic.AsyncAnthropic:
    settings = load_settings(project)
    state = SimulatorState(settings.simulator, root=settings.root, state_dir=tmp_path / "sim")
    return anthropic.AsyncAnthropic(
        api_key="k", base_url="http://sim.test", max_retries=0,
        http_client=anthropic.DefaultAsyncHttpxClient(transport=httpx2.ASGITransport(app=create_app(state))))


def _create(client: anthropic.AsyncAnthropic, **params: Any) -> dict[str, Any]:
    async def call() -> dict[str, Any]:
        raw = await client.messages.with_raw_response.create(**params)
        return raw.http_response.json()

    return asyncio.run(call())


def _recorded_usage(name: str) -> dict[str, Any]:
    return json.loads((RECORDED / name).read_text())["usage"]


@pytest.mark.e2e
def test_write_then_read_has_the_recorded_usage_shape(client: anthropic.AsyncAnthropic) -> None:
    params = {"model": "claude-sonnet-4-6", "max_tokens": 50,
              "cache_control": {"type": "ephemeral", "ttl": "5m"},
              "messages": [{"role": "user", "content": [{"type": "text", "text": LONG}]}],
              "thinking": {"type": "disabled"}}
    first, second = _create(client, **params)["usage"], _create(client, **params)["usage"]
    recorded_write = _recorded_usage("messages_cache_write_5m_sonnet-4-5.response.json")
    recorded_read = _recorded_usage("messages_cache_read_sonnet-4-5.response.json")
    assert set(first) == set(recorded_write) and set(second) == set(recorded_read)
    assert first["input_tokens"] == recorded_write["input_tokens"] == 3
    assert first["cache_creation"]["ephemeral_5m_input_tokens"] == first["cache_creation_input_tokens"] > 1024
    assert first["cache_read_input_tokens"] == 0
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert second["cache_creation_input_tokens"] == 0 and second["input_tokens"] == 3


@pytest.mark.e2e
def test_prefix_below_the_model_minimum_is_silently_not_cached(client: anthropic.AsyncAnthropic) -> None:
    # ~1,300 tokens: over Sonnet 4.5's 1,024 minimum, under Haiku 4.5's 4,096.
    params = {"model": "claude-haiku-4-5", "max_tokens": 50, "cache_control": {"type": "ephemeral"},
              "messages": [{"role": "user", "content": LONG}]}
    for _ in range(2):
        usage = _create(client, **params)["usage"]
        assert usage["cache_creation_input_tokens"] == 0 and usage["cache_read_input_tokens"] == 0


@pytest.mark.e2e
def test_system_breakpoint_caches_only_the_prefix_and_1h_ttl_is_reported(
        client: anthropic.AsyncAnthropic) -> None:
    def params(question: str) -> dict[str, Any]:
        return {"model": "claude-sonnet-5-5", "max_tokens": 100, "thinking": {"type": "disabled"},
                "system": [{"type": "text", "text": LONG,
                            "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
                "messages": [{"role": "user", "content": question}]}

    first = _create(client, **params("billing or technical? my invoice is wrong"))["usage"]
    second = _create(client, **params("a different question about the API"))["usage"]
    assert first["cache_creation"]["ephemeral_1h_input_tokens"] > 1000
    assert first["cache_creation"]["ephemeral_5m_input_tokens"] == 0
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert second["input_tokens"] > 3  # the per-sample message is never cached


def test_ttl_is_refreshed_by_hits_and_expires_without_them() -> None:
    clock = [0.0]
    cache = PromptCache(clock=lambda: clock[0])
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]}]}

    def at(moment: float) -> tuple[int, int]:
        clock[0] = moment
        usage = cache.apply("claude-sonnet-5-5", body, 5000, arrived_at=moment, begins_at=moment)
        return usage.cache_read_input_tokens, usage.cache_write_5m

    written = at(0)[1]
    assert written > 0
    assert at(200) == (written, 0)  # hit at 200 s refreshes the 5-minute TTL…
    assert at(450) == (written, 0)  # …so 450 s is still a hit
    assert at(900) == (0, written)  # 450 s without a hit: expired, written again


def test_requests_sent_in_parallel_with_the_writer_all_miss() -> None:
    cache = PromptCache(clock=lambda: 10.0)
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]}]}
    first = cache.apply("claude-sonnet-5-5", body, 5000, arrived_at=1.0, begins_at=2.0)
    parallel = cache.apply("claude-sonnet-5-5", body, 5000, arrived_at=1.5, begins_at=2.5)
    later = cache.apply("claude-sonnet-5-5", body, 5000, arrived_at=3.0, begins_at=4.0)
    assert first.cache_write_5m > 0 and parallel.cache_write_5m == first.cache_write_5m
    assert parallel.cache_read_input_tokens == 0 and later.cache_read_input_tokens == first.cache_write_5m


def test_breakpoint_goes_on_the_system_block_with_the_mode_ttl(project: Path) -> None:
    batch = prepare(project / "tasks" / "triage.yaml", sample_size=4, mode="batch")
    realtime = prepare(project / "tasks" / "triage.yaml", sample_size=4, mode="realtime")
    assert batch.requests[0].params["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert realtime.requests[0].params["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert all("cache_control" not in json.dumps(r.params["messages"]) for r in batch.requests)


@pytest.mark.e2e
def test_short_prompt_is_not_marked_and_the_run_says_why(project: Path) -> None:
    task = project / "tasks" / "triage.yaml"
    text = task.read_text()
    start, end = text.index("    Examples (message"), text.index("    Rules:")
    task.write_text(text[:start] + text[end:])
    prepared = prepare(task, sample_size=4, mode="realtime")
    assert all("cache_control" not in json.dumps(r.params) for r in prepared.requests)
    plan = prepared.cache_plans["candidate"]
    assert not plan.enabled and "below claude-haiku-5-5's minimum cacheable length of 512" in plan.reason
    result = CliRunner().invoke(main, ["run", str(task), "-n", "20", "--mode", "realtime"])
    assert result.exit_code == 0 and "prompt caching off for the candidate" in result.output


@pytest.mark.e2e
def test_demo_realtime_run_reads_the_static_prefix_from_cache_after_the_first_request(project: Path) -> None:
    result = CliRunner().invoke(main, ["run", str(project / "tasks" / "triage.yaml"), "-q", "-n", "60",
                                       "--mode", "realtime", "--run-id", "rt"])
    assert result.exit_code == 0, result.output
    report = summary(project, "rt")
    for role in ("candidate", "reference"):
        caching = report["caching"][role]
        prefix = caching["cache_write_tokens"]  # written once, by the warm-up request
        assert caching["requests_with_cache_write"] == 1 and prefix > 512
        assert caching["cache_read_tokens"] >= 0.95 * prefix * (60 - 1)
        assert caching["hit_rate"] >= 0.95 and caching["savings_usd"] > 0
    assert report["cost_usd"]["cache_savings"] > 0


@pytest.mark.e2e
def test_batch_run_warms_the_1h_cache_first(project: Path) -> None:
    # Every readable prefix read (hit rate 1.0): the recipe at its best. Real batches hit 30-98%, which is
    # the simulator's default behaviour (test_batch_cache_hit_rate_reaches_the_estimate_and_the_report).
    configure(project, batch_delay_s=0.2, poll_initial_s=0.1, poll_max_s=0.5, batch_cache_hit_rate=1.0)
    result = CliRunner().invoke(main, ["run", str(project / "tasks" / "triage.yaml"), "-q", "-n", "40",
                                       "--run-id", "bt"])
    assert result.exit_code == 0, result.output
    report = summary(project, "bt")
    assert report["batch"]["warmup_items"] == 2 and len(report["batch"]["answer_batch_ids"]) == 2
    for role in ("candidate", "reference"):
        caching = report["caching"][role]
        assert caching["cache_write_1h_tokens"] > 0 and caching["cache_write_5m_tokens"] == 0
        assert caching["requests_with_cache_read"] == 39


LINT_TASK = """\
name: demo
dataset: {path: data.jsonl}
prompt:
  system: |
    Classify support messages.
    Today is {{ now }}.
    Customer tier: {{ tier }}
  user: |
    {{ text }}
    INSTRUCTIONS_PLACEHOLDER
output:
  labels: [a, b]
models: {candidate: claude-haiku-5-5, reference: claude-sonnet-5-5}
"""


def test_lint_flags_volatile_and_per_sample_values_in_the_cached_prefix(tmp_path: Path) -> None:
    path = tmp_path / "task.yaml"
    path.write_text(LINT_TASK.replace("INSTRUCTIONS_PLACEHOLDER", "Answer briefly."))
    findings = lint_task(load_task(path))
    now = next(f for f in findings if "{{ now }}" in f.message)
    assert now.severity == "warning" and now.where == f"{path}:6" and "volatile" in now.message
    tier = next(f for f in findings if "{{ tier }}" in f.message)
    assert tier.severity == "error" and tier.where == f"{path}:7" and "prompt.user" in tier.fix
    assert len(findings) == 2  # nothing else in this template busts the cache


def test_lint_flags_static_instructions_after_the_per_sample_part(tmp_path: Path) -> None:
    path = tmp_path / "task.yaml"
    long_rules = "Always answer with the queue name and nothing else, " * 8
    path.write_text(LINT_TASK.replace("    Today is {{ now }}.\n    Customer tier: {{ tier }}\n", "")
                    .replace("INSTRUCTIONS_PLACEHOLDER", long_rules))
    findings = lint_task(load_task(path))
    assert [f.severity for f in findings if f.key == "prompt.user"] == ["warning"]
    assert "move these instructions into prompt.system" in findings[0].fix


def test_lint_cli_exit_codes(project: Path, tmp_path: Path) -> None:
    clean = CliRunner().invoke(main, ["lint", str(project / "tasks" / "triage.yaml")])
    assert clean.exit_code == 0 and "no cache-busting problems" in clean.output
    path = tmp_path / "task.yaml"
    path.write_text(LINT_TASK.replace("INSTRUCTIONS_PLACEHOLDER", "x"))
    dirty = CliRunner().invoke(main, ["lint", str(path)])
    assert dirty.exit_code == 1 and "{{ now }}" in dirty.output
