"""Custom metrics: a function named in the task scores each sample, can decide, and goes through the same
statistics as the built-in metrics (the paired Tango test with gold, the exact agreement test without);
its failures are located evalkit errors.

Most runs here go through :func:`run_evaluation` on the fast tier's fake provider; one runs the example
task, tasks/triage_teams.yaml, on the simulator."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.config import load_settings
from evalkit.errors import EXIT_METRIC, EXIT_USAGE, MetricError, SpecError
from evalkit.progress import NullProgress
from evalkit.record.files import read_record, read_rows
from evalkit.run.options import RunOptions
from evalkit.run.pipeline import RunResult, run_evaluation
from evalkit.spec import load_task, parse_task
from evalkit.stats.decision import decide_paired, decide_single
from tests.fakes import FakeProvider, Received, fake_backend, json_message

REPO = Path(__file__).resolve().parents[1]
LABELS = ["billing", "account", "technical"]
TEAM = {"billing": "accounts", "account": "accounts", "technical": "engineering"}
TASK = """\
name: teams
dataset: {path: d.jsonl, label_column: LABEL_COLUMN}
sample: {size: 60, seed: 1}
prompt:
  system: Route the ticket to billing, account or technical.
  user: "{{ text }}"
output:
  label_field: category
  labels: [billing, account, technical]
models: {candidate: claude-haiku-5-5, reference: claude-sonnet-5-5}
metrics:
  - agreement
  - accuracy
  - name: team
    function: FUNCTION
    threshold: 0.5
decision: {margin: 0.1, metric: DECIDER}
"""
METRIC_FILE = '''\
TEAM = {"billing": "accounts", "account": "accounts", "technical": "engineering"}
CALLS = []


def team(sample, answer, truth, against=None):
    CALLS.append((sample.id, answer, truth, against))
    if answer == truth:
        return 1.0
    return 0.75 if TEAM[answer] == TEAM[truth] else 0.0


def is_team(sample, answer, truth):
    return TEAM[answer] == TEAM[truth]


def picky(sample, answer, truth):
    if answer != truth and sample.id == "t006":
        raise ValueError("cannot score this one")
    return answer == truth


def too_big(sample, answer, truth):
    return 1.5


def always_fails(sample, answer, truth):
    return {}["missing"]


def two_args(sample, answer):
    return 1.0
'''


def _gold(i: int) -> str:
    return LABELS[i % 3]


def _candidate(gold: str, i: int) -> str:
    """The candidate's mistakes: billing -> account every second time (same team), account -> technical
    every fifth (another team)."""
    if gold == "billing" and i % 2 == 0:
        return "account"
    if gold == "account" and i % 5 == 0:
        return "technical"
    return gold


def _project(tmp_path: Path, *, function: str = "metrics.py:team", decider: str = "team",
             gold: bool = True, extra: str = "") -> Path:
    rows = [{"id": f"t{i:03d}", "text": f"ticket {i} about something", "category": _gold(i),
             "urgent": i % 4 == 0} for i in range(60)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "metrics.py").write_text(METRIC_FILE)
    (tmp_path / "evalkit.toml").write_text(
        '[evalkit]\ncache_dir = ".evalkit/cache"\nreports_dir = "reports"\n')
    task = (TASK.replace("FUNCTION", function).replace("DECIDER", decider)
            .replace("LABEL_COLUMN", "category" if gold else "null")) + extra
    path = tmp_path / "task.yaml"
    path.write_text(task)
    return path


def _answers(received: Received) -> dict[str, Any]:
    number = int(received.user_text.split()[1])
    gold = _gold(number)
    label = _candidate(gold, number) if received.model.startswith("claude-haiku") else gold
    return json_message(received, category=label, confidence=0.9, escalate=False)


def _run(path: Path) -> RunResult:
    task = load_task(path)
    return run_evaluation(task, load_settings(task.base_dir), RunOptions(mode="realtime", run_id="r"),
                          progress=NullProgress(), backend=fake_backend(FakeProvider(_answers)))


def _team(answer: str, truth: str) -> float:
    return 1.0 if answer == truth else 0.75 if TEAM[answer] == TEAM[truth] else 0.0


def test_a_custom_metric_decides_with_the_paired_test_on_its_binarised_scores(tmp_path: Path) -> None:
    result = _run(_project(tmp_path))
    record = result.record
    # The same cells, recomputed here from the answers with the same rule: score ≥ threshold is right.
    cells = {"a": 0, "b": 0, "c": 0, "d": 0}
    for row in result.rows:
        cand = _team(row.candidate.answer.label or "", row.gold) >= 0.5
        ref = _team(row.reference.answer.label or "", row.gold) >= 0.5
        assert (row.scores.candidate_correct, row.scores.reference_correct) == (cand, ref)
        cell = {(True, True): "a", (True, False): "b", (False, True): "c", (False, False): "d"}[(ref, cand)]
        cells[cell] += 1
    details = record.decision.details
    assert (details.a, details.b, details.c, details.d) == (cells["a"], cells["b"], cells["c"], cells["d"])
    assert record.scoring_mode == "gold" and record.decision.mode == "gold"
    verdict, statistic = decide_paired(cells["b"], cells["c"], 60, margin=0.1)
    assert record.decision.verdict == verdict and details.tango_t == pytest.approx(statistic)
    assert "team ≥ 0.5" in record.decision.reason
    # By team, only the account -> technical slips count: 4 of 60; by label the billing ones count too.
    assert cells["b"] == 4 and record.metrics.accuracy is not None
    assert record.metrics.accuracy.candidate.successes == 60 - 4
    assert record.metrics.custom is not None
    team = record.metrics.custom["team"]
    expected = [_team(row.candidate.answer.label or "", row.gold) for row in result.rows]
    assert team.n == 60 and team.candidate_vs_gold == pytest.approx(sum(expected) / 60)
    assert team.reference_vs_gold == 1.0
    assert all(row.scores.metric_values and row.scores.threshold == 0.5 for row in result.rows)


def test_without_gold_the_custom_metric_decides_by_agreement_with_the_reference(tmp_path: Path) -> None:
    result = _run(_project(tmp_path, gold=False))
    record = result.record
    agree = sum(_team(row.candidate.answer.label or "", row.reference.answer.label or "") >= 0.5
                for row in result.rows)
    assert record.scoring_mode == "reference" and record.decision.details.agreements == agree == 56
    verdict, _, _ = decide_single(agree, 60, margin=0.1)
    assert record.decision.verdict == verdict
    assert "agreement with the reference (team ≥ 0.5)" in record.decision.reason


def test_the_function_sees_the_sample_and_what_the_truth_is(tmp_path: Path) -> None:
    _run(_project(tmp_path))
    module = next(m for name, m in sys.modules.items() if name.startswith("evalkit_metric_")
                  and getattr(m, "__file__", "") == str(tmp_path / "metrics.py"))
    calls = module.CALLS
    assert {against for *_, against in calls} == {"reference", "gold"}
    assert all(isinstance(sample_id, str) and answer in LABELS and truth in LABELS
               for sample_id, answer, truth, _ in calls)


def test_a_bool_metric_and_a_module_path_work_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "site" / "teamscores"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(METRIC_FILE)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    result = _run(_project(tmp_path, function="teamscores:is_team"))
    assert result.record.decision.details.b == 4
    assert {row.scores.metric_values["cand_vs_gold"] for row in result.rows  # type: ignore[index]
            } == {0.0, 1.0}


def test_a_metric_from_an_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    (site / "myteams").mkdir(parents=True)
    (site / "myteams" / "__init__.py").write_text(METRIC_FILE)
    info = site / "myteams-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myteams\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[evalkit.metrics]\nby_team = myteams:team\n")
    monkeypatch.syspath_prepend(str(site))
    path = _project(tmp_path)
    path.write_text(path.read_text().replace("  - name: team\n    function: metrics.py:team\n"
                                             "    threshold: 0.5\n", "  - by_team\n")
                    .replace("metric: team", "metric: by_team"))
    record = _run(path).record
    assert record.metrics.custom is not None and set(record.metrics.custom) == {"by_team"}
    assert record.decision.details.b == 4 and "by_team ≥ 0.5" in record.decision.reason  # default 0.5


def test_an_error_on_one_sample_names_the_task_line_the_function_and_the_sample(tmp_path: Path) -> None:
    path = _project(tmp_path, function="metrics.py:picky", decider="team")
    with pytest.raises(MetricError) as caught:
        _run(path)
    message = caught.value.message
    line = path.read_text().splitlines().index("  - name: team") + 1
    assert f"{path}:{line}" in message and "metrics.py:picky" in message and "'t006'" in message
    assert "ValueError: cannot score this one" in message and f"{tmp_path / 'metrics.py'}:" in message
    assert caught.value.exit_code == EXIT_METRIC


@pytest.mark.parametrize(("function", "found"), [
    ("metrics.py:too_big", "returned 1.5"),
    ("metrics.py:always_fails", "raised KeyError"),
])
def test_a_broken_metric_fails_validate_before_anything_is_paid(tmp_path: Path, function: str,
                                                                 found: str) -> None:
    path = _project(tmp_path, function=function)
    result = CliRunner().invoke(main, ["validate", str(path), "--online"])
    assert result.exit_code == EXIT_METRIC, result.output
    assert found in result.output and "on sample 't0" in result.output


@pytest.mark.parametrize(("function", "decider", "found"), [
    ("missing.py:team", "team", "metric file missing.py not found"),
    ("metrics.py:teem", "team", "has no function 'teem'"),
    ("metrics.py:two_args", "team", "cannot be called as team(sample, answer, truth)"),
    ("no_such_module_xyz:team", "team", "cannot import no_such_module_xyz"),
    ("metrics.py:team", "rouge_l", "'rouge_l' cannot decide a classification task"),
    ("metrics.py:team", "nothing_like_it", "'nothing_like_it' cannot decide"),
])
def test_a_metric_that_cannot_load_is_a_located_task_error(tmp_path: Path, function: str, decider: str,
                                                            found: str) -> None:
    path = _project(tmp_path, function=function, decider=decider)
    result = CliRunner().invoke(main, ["validate", str(path), "--online"])
    assert result.exit_code == EXIT_USAGE, result.output
    assert found in result.output and f"{path}:" in result.output


def test_a_custom_metric_may_not_take_a_built_in_name(tmp_path: Path) -> None:
    path = _project(tmp_path)
    path.write_text(path.read_text().replace("name: team", "name: accuracy").replace("metric: team",
                                                                                      "metric: accuracy"))
    with pytest.raises(SpecError, match="'accuracy' is a built-in metric"):
        _run(path)


def test_bare_metric_names_keep_the_task_hash_and_entries_are_checked() -> None:
    text = (REPO / "tasks" / "triage.yaml").read_text()
    task = parse_task(text, REPO / "tasks" / "triage.yaml")
    assert task.model_dump(mode="json")["metrics"] == ["agreement", "accuracy", "macro_f1", "kappa",
                                                        "confusion_matrix"]
    bad = text.replace("metrics: [agreement, accuracy, macro_f1, kappa, confusion_matrix]",
                       "metrics: [agreement, {name: mine, fnction: 'x.py:f'}]")
    with pytest.raises(SpecError, match="did you mean 'function'"):
        parse_task(bad, REPO / "tasks" / "triage.yaml")


def _load_example() -> Any:
    spec = importlib.util.spec_from_file_location("triage_teams_example", REPO / "tasks" / "triage_teams.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.e2e
@pytest.mark.slow
def test_the_example_task_decides_by_team_on_the_simulator(project: Path) -> None:
    for name in ("triage_teams.yaml", "triage_teams.py"):
        shutil.copy(REPO / "tasks" / name, project / "tasks" / name)
    result = CliRunner().invoke(main, ["run", str(project / "tasks" / "triage_teams.yaml"), "-q", "-n", "200",
                                       "--mode", "realtime", "--run-id", "teams"])
    assert result.exit_code == 0, result.output
    folder = project / "reports" / "triage_teams" / "teams"
    record, rows = read_record(folder), read_rows(folder)
    example = _load_example()
    lines = (project / "datasets" / "triage.jsonl").read_text().splitlines()
    data = {row["id"]: row for row in map(json.loads, lines)}
    right = {(row.id, role): example.team_routing(SimpleNamespace(fields=data[row.id]),
                                                  getattr(row, role).answer.label, row.gold) >= 0.5
             for row in rows for role in ("candidate", "reference") if getattr(row, role).answer.ok}
    b = sum(right.get((row.id, "reference"), False) and not right.get((row.id, "candidate"), False)
            for row in rows)
    assert record.decision.details.b == b and "team_routing ≥ 0.5" in record.decision.reason
    assert record.metrics.custom is not None and "team_routing" in record.metrics.custom
    # Routing to the right team is easier than to the right queue, for both models.
    assert record.metrics.accuracy is not None and record.decision.details.candidate_accuracy is not None
    assert record.decision.details.candidate_accuracy >= record.metrics.accuracy.candidate.value  # type: ignore[operator]
    assert "mean team_routing vs gold" in (folder / "report.html").read_text()
