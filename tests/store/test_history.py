"""Run history on both backends: `evalkit runs`, `evalkit runs show`, and `evalkit compare` on two runs of
the same samples with a known change (one sample's gold label flipped between the runs: its answer comes
from the cache, so its correctness, and only that, changes)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from tests.postgres_server import PASSWORD

pytestmark = pytest.mark.e2e


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _small_dataset(project: Path, n: int = 40) -> None:
    """The task on a file of n test rows: a run of n samples takes them all, whatever their labels."""
    source = project / "datasets" / "triage.jsonl"
    rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    (project / "datasets" / "triage_small.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in [r for r in rows if r.get("split") == "test"][:n]))
    task = project / "tasks" / "triage.yaml"
    task.write_text(task.read_text().replace("../datasets/triage.jsonl", "../datasets/triage_small.jsonl"))


def _flip_gold(project: Path, sample_id: str) -> tuple[str, str]:
    path = project / "datasets" / "triage_small.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    labels = sorted({r["category"] for r in rows})
    for row in rows:
        if row["id"] == sample_id:
            before = row["category"]
            row["category"] = next(label for label in labels if label != before)
            after = row["category"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return before, after


@pytest.mark.parametrize("backend", ["embedded", "postgres"])
def test_runs_and_compare_show_the_known_changed_sample(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                        backend: str, request: pytest.FixtureRequest) -> None:
    if backend == "postgres":
        monkeypatch.setenv("EVALKIT_STORE", request.getfixturevalue("store_url"))
    monkeypatch.chdir(project)
    _small_dataset(project)
    task = "tasks/triage.yaml"
    _cli("run", task, "-q", "-n", "40", "--mode", "realtime", "--offline", "--run-id", "before")
    rows = [json.loads(line) for line in
            (project / "reports" / "triage" / "before" / "results.jsonl").read_text().splitlines()]
    changed = rows[0]["id"]
    was_correct = rows[0]["scores"]["candidate_correct"]
    _flip_gold(project, changed)
    _cli("run", task, "-q", "-n", "40", "--mode", "realtime", "--offline", "--run-id", "after")
    history = (project / "reports" / "triage" / "history.html").read_text()
    assert "<svg" in history and history.count("<circle") == 2 and "before/report.html" in history
    report = (project / "reports" / "triage" / "after" / "report.html").read_text()
    assert 'href="../history.html"' in report
    if backend == "postgres":  # the history is the store's: the folders are not needed any more
        shutil.rmtree(project / "reports")

    listing = _cli("runs", "triage")
    assert "triage/before" in listing and "triage/after" in listing
    assert listing.index("triage/before") < listing.index("triage/after")
    shown = _cli("runs", "show", "triage/after")
    assert "decision:" in shown and "dataset" in shown and "SIMULATED" in shown

    out = _cli("compare", "triage/before", "triage/after")
    assert f"{changed}:" in out
    assert ("broke" if was_correct else "fixed") in out.split(f"{changed}:")[1].splitlines()[0]
    assert "the dataset changed between the runs" in out
    page = project / "reports" / "triage" / "compare-before-vs-after.html"
    html = page.read_text()
    assert changed in html and "Per label" in html
    assert "samples: 40 in common (0 only in A, 0 only in B)" in out
    assert "per sample: 1 changed" in out
    for text in (listing, shown, out, html):
        assert PASSWORD not in text


@pytest.mark.parametrize("backend", ["embedded", "postgres"])
def test_two_runs_finishing_in_the_same_second_are_listed_in_the_order_they_finished(
        project: Path, monkeypatch: pytest.MonkeyPatch, backend: str, request: pytest.FixtureRequest) -> None:
    # finished_at had whole seconds: two runs in one second were listed by run id ("after" before "before").
    # Every run here finishes in the same second, a millisecond after the one before it.
    from datetime import UTC, datetime, timedelta

    from evalkit.run import assemble

    if backend == "postgres":
        monkeypatch.setenv("EVALKIT_STORE", request.getfixturevalue("store_url"))
    monkeypatch.chdir(project)
    _small_dataset(project)
    ticks = iter(range(1, 100))
    second = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)

    class SameSecond(datetime):
        @classmethod
        def now(cls, tz: object = None) -> SameSecond:  # type: ignore[override]
            moment = second + timedelta(milliseconds=next(ticks))
            return cls.fromtimestamp(moment.timestamp(), UTC)

    monkeypatch.setattr(assemble, "datetime", SameSecond)
    for run_id in ("zulu", "alpha"):
        _cli("run", "tasks/triage.yaml", "-q", "-n", "40", "--mode", "realtime", "--offline",
             "--run-id", run_id)
    listing = _cli("runs", "triage")
    assert listing.index("triage/zulu") < listing.index("triage/alpha"), listing
