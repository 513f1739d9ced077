"""Several candidate configurations in one run, on the fake provider: the shared reference is asked once
per sample, every configuration gets its own decision and record, and the recommendation is the cheapest
configuration GO after the family-wise correction — with a prompt variant that closes the gap named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evalkit.api import run_task
from evalkit.config import load_settings
from evalkit.errors import SpecError, UsageError
from evalkit.progress import NullProgress
from evalkit.run.options import RunOptions
from evalkit.run.pipeline import run_evaluation
from evalkit.spec import load_task, parse_task
from tests.fakes import FakeProvider, Received, fake_backend, json_message

LABELS = ["billing", "technical"]
TASK = """\
name: tickets
dataset: {path: d.jsonl, label_column: category}
sample: {size: 80, seed: 1}
prompt:
  system: "Route the ticket to billing or technical.{{ hint }}"
  variables: {hint: ""}
  user: "{{ text }}"
output:
  label_field: category
  labels: [billing, technical]
models:
  reference: claude-sonnet-5-5
  candidates:
    - claude-haiku-5-5
    - name: haiku-hinted
      model: claude-haiku-5-5
      prompt: {variables: {hint: " HINT: invoices and charges are billing."}}
    - {model: claude-sonnet-5-5, effort: low}
decision: {margin: 0.1}
"""


def _write(tmp_path: Path, task: str = TASK, count: int = 80) -> tuple[Path, dict[str, str]]:
    rows = [{"id": f"t{i:03d}", "text": f"ticket {i}: my {'invoice' if i % 2 else 'login page'} is wrong",
             "category": LABELS[i % 2]} for i in range(count)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    settings = '[evalkit]\ncache_dir = ".evalkit/cache"\nreports_dir = "reports"\n'
    (tmp_path / "evalkit.toml").write_text(settings + "[batch]\npoll_initial_s = 0.01\npoll_max_s = 0.01\n")
    path = tmp_path / "task.yaml"
    path.write_text(task)
    return path, {row["text"]: row["category"] for row in rows}


def _answers(gold: dict[str, str]) -> Any:
    """The reference and low-effort Sonnet are right; Haiku with the task's prompt misses every third
    billing ticket (numbers divisible by 3); the hint in its prompt variant fixes that."""
    def answer(received: Received) -> dict[str, Any]:
        label = gold[received.user_text]
        number = int(received.user_text.split()[1].rstrip(":"))
        haiku = received.model.startswith("claude-haiku")
        if haiku and "HINT" not in received.system and label == "billing" and number % 3 == 0:
            label = "technical"
        return json_message(received, category=label, confidence=0.9)
    return answer


@pytest.mark.parametrize("mode", ["realtime", "batch"])
def test_the_reference_is_asked_once_per_sample_for_every_configuration(tmp_path: Path, mode: str) -> None:
    path, gold = _write(tmp_path)
    task = load_task(path)
    provider = FakeProvider(_answers(gold), batch_polls=1)
    result = run_evaluation(task, load_settings(task.base_dir), RunOptions(mode=mode, run_id="r"),  # type: ignore[arg-type]
                            progress=NullProgress(), backend=fake_backend(provider))
    billed = provider.billed
    references = [r for r in billed if r.model == "claude-sonnet-5-5" and "effort" not in
                  (r.params.get("output_config") or {})]
    assert len(references) == 80 and len({r.user_text for r in references}) == 80
    assert len(billed) == 80 * 4  # the reference once, each configuration once
    assert result.record.execution.requests_sent == 320 and result.record.execution.deduplicated == 0
    if mode == "batch":
        assert {r.mode for r in billed} == {"batch"}
    names = [c.name for c in result.configurations]
    assert names == ["claude-haiku-5-5", "haiku-hinted", "claude-sonnet-5-5-low"]
    # each configuration's record is about its own candidate, against the same reference answers
    assert [c.record.provenance.models.setup["candidate"].effort for c in result.configurations] == \
        [None, None, "low"]
    references_seen = {json.dumps([row.reference.answer.label for row in c.rows])
                       for c in result.configurations}
    assert len(references_seen) == 1
    # issue 22: each configuration's answered calls hold its own role, not the rendered prompts
    calls = [call for r in result.results for call in r.calls.values()]
    assert {call.request.role for call in calls} == {"candidate", "reference"}
    assert all(call.request.is_released and "messages" not in call.request.params for call in calls)


def test_the_cheapest_go_is_recommended_and_the_prompt_that_closed_the_gap_is_named(tmp_path: Path) -> None:
    path, gold = _write(tmp_path)
    provider = FakeProvider(_answers(gold))
    options = RunOptions(mode="realtime", run_id="pick")
    task = load_task(path)
    result = run_evaluation(task, load_settings(task.base_dir), options, progress=NullProgress(),
                            backend=fake_backend(provider))
    selection = result.record.selection
    assert selection is not None and selection.method == "holm"
    by_name = {c.name: c for c in selection.configurations}
    assert by_name["claude-haiku-5-5"].verdict == "NO-GO" and not by_name["claude-haiku-5-5"].go
    assert by_name["haiku-hinted"].go and by_name["claude-sonnet-5-5-low"].go
    assert by_name["haiku-hinted"].cost_per_1k_usd < by_name["claude-sonnet-5-5-low"].cost_per_1k_usd
    assert selection.recommended == "haiku-hinted"
    assert result.record.decision.verdict == "NO-GO"  # summary.json's decision is the primary's
    [gap] = selection.prompt_gaps
    assert gap.closed and (gap.base, gap.variant) == ("claude-haiku-5-5", "haiku-hinted")
    # every sampled billing ticket numbered a multiple of 3 was fixed by the hint, and nothing was broken
    sampled = {row.id for row in result.rows}
    fixed = sum(1 for i in range(80) if i % 2 == 0 and i % 3 == 0 and f"t{i:03d}" in sampled)  # billing: even
    billing = next(row for row in gap.labels if row.label == "billing")
    assert billing.fixed == fixed > 0 and billing.broke == 0
    assert sum(row.fixed for row in gap.labels) == fixed and sum(row.broke for row in gap.labels) == 0


def test_every_configuration_gets_its_own_report_folder(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path, gold = _write(tmp_path)
    provider = FakeProvider(_answers(gold))
    import evalkit.run.pipeline as pipeline

    monkeypatch.setattr(pipeline, "connect",
                        lambda settings, offline=None, platform="anthropic": fake_backend(provider))
    result = run_task(path, RunOptions(mode="realtime", run_id="folders"))
    folder = tmp_path / "reports" / "tickets" / "folders"
    assert result.folder == folder
    for name in ("claude-haiku-5-5", "haiku-hinted", "claude-sonnet-5-5-low"):
        own = json.loads((folder / "configs" / name / "summary.json").read_text())
        assert own["selection"] is None and own["provenance"]["models"]["candidate"] in name.replace(
            "-low", "").replace("haiku-hinted", "claude-haiku-5-5")
        assert (folder / "configs" / name / "report.html").is_file()
    top = json.loads((folder / "summary.json").read_text())
    assert [c["folder"] for c in top["selection"]["configurations"]] == [
        "configs/claude-haiku-5-5", "configs/haiku-hinted", "configs/claude-sonnet-5-5-low"]
    html = (folder / "report.html").read_text()
    assert 'id="configurations"' in html and "configs/haiku-hinted/report.html" in html
    assert "The gap was closed by prompting" in html


@pytest.mark.parametrize(("models", "message"), [
    ("  candidate: claude-haiku-5-5\n  candidates: [claude-haiku-5-5]\n", "either 'candidate'"),
    ("  candidates: [claude-haiku-5-5, claude-haiku-5-5]\n", "both called 'claude-haiku-5-5'"),
    ("  candidates: [claude-haiku-5-5]\n  reference: {model: claude-sonnet-5-5, prompt: {system: x}}\n",
     "prompt variants and names belong to candidates"),
    ("  candidates: [claude-haiku-5-5, claude-sonnet-5-5]\n  candidate_log: log.jsonl\n",
     "candidate_log stands in for one candidate"),
])
def test_configuration_mistakes_are_located_errors(tmp_path: Path, models: str, message: str) -> None:
    start = TASK.index("models:\n") + len("models:\n")
    end = TASK.index("decision:")
    reference = "" if "reference:" in models else "  reference: claude-sonnet-5-5\n"
    text = TASK[:start] + reference + models + TASK[end:]
    with pytest.raises(SpecError) as caught:
        parse_task(text, tmp_path / "task.yaml")
    assert message in str(caught.value)
    assert f"task.yaml:{TASK[:start].count(chr(10))}" in str(caught.value)  # the models: line


def test_sequential_runs_are_refused_for_several_configurations(tmp_path: Path) -> None:
    path, gold = _write(tmp_path, count=40)
    task = load_task(path)
    provider = FakeProvider(_answers(gold))
    with pytest.raises(UsageError, match="--sequential"):
        run_evaluation(task, load_settings(task.base_dir), RunOptions(mode="realtime", sequential=True),
                       progress=NullProgress(), backend=fake_backend(provider))
    assert provider.history == []


def test_tune_routes_a_named_configuration_and_the_router_sends_its_prompt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import evalkit.run.pipeline as pipeline
    from evalkit.api import tune_task
    from evalkit.routing.analysis import RoutingOptions
    from evalkit.routing.router import Router, load_routing_file

    path, gold = _write(tmp_path)
    provider = FakeProvider(_answers(gold))
    monkeypatch.setattr(pipeline, "connect",
                        lambda settings, offline=None, platform="anthropic": fake_backend(provider))
    run_task(path, RunOptions(mode="realtime", run_id="first"))
    sent = len(provider.history)
    tuned = tune_task(path, RoutingOptions(target_loss=0.2), mode="realtime", configuration="haiku-hinted")
    assert len(provider.history) == sent  # from the response cache only
    routing = load_routing_file(tuned.path)
    assert routing.configuration == "haiku-hinted" and routing.candidate == "claude-haiku-5-5"
    router = Router.from_routing(routing, load_task(path))
    assert "HINT" in router.renderers["candidate"].system
    assert "HINT" not in router.renderers["reference"].system
    with pytest.raises(UsageError, match="no configuration 'nope'"):
        tune_task(path, RoutingOptions(), mode="realtime", configuration="nope")
