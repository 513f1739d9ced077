"""The demo dataset, loading through HF datasets, and the stratified, seeded sample."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from evalkit.datasets import load_samples
from evalkit.errors import DatasetError, SpecError
from evalkit.spec import load_task

REPO = Path(__file__).resolve().parents[1]


def _rows() -> list[dict]:
    return [json.loads(line) for line in (REPO / "datasets" / "triage.jsonl").read_text().splitlines()]


def test_demo_dataset_is_big_varied_and_split_cleanly() -> None:
    rows = _rows()
    assert len(rows) >= 600
    assert len({row["id"] for row in rows}) == len(rows)
    assert len({row["text"] for row in rows}) == len(rows)
    categories = Counter(row["category"] for row in rows)
    assert set(categories) == {"billing", "technical", "account", "feature_request", "general"}
    assert min(categories.values()) >= 100
    assert sum(row["ambiguous"] for row in rows) >= 60  # genuinely ambiguous messages are part of it
    assert len({row["channel"] for row in rows}) == 4
    splits = Counter(row["split"] for row in rows)
    assert splits["test"] >= 400 and splits["train"] >= 250


def test_sample_is_stratified_seeded_and_from_the_test_split(project: Path) -> None:
    task = load_task(project / "tasks" / "triage.yaml")
    first = load_samples(task, cache_dir=project / ".cache", offline=True)
    again = load_samples(task, cache_dir=project / ".cache", offline=True)
    assert [s.id for s in first.samples] == [s.id for s in again.samples]
    assert len(first.samples) == 300 and first.rows_available == 468
    test_ids = {row["id"] for row in _rows() if row["split"] == "test"}
    assert {s.id for s in first.samples} <= test_ids
    population = Counter(row["category"] for row in _rows() if row["split"] == "test")
    drawn = Counter(s.label for s in first.samples)
    for label, count in population.items():
        assert abs(drawn[label] - 300 * count / 468) <= 1  # proportional allocation
    other_seed = load_samples(task, cache_dir=project / ".cache", offline=True, seed=99)
    assert [s.id for s in other_seed.samples] != [s.id for s in first.samples]


def _task_with(project: Path, rows: list[dict], **replace: str) -> Path:
    data = project / "datasets" / "triage.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    task = project / "tasks" / "triage.yaml"
    text = task.read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    task.write_text(text)
    return task


def _row(i: int, category: str = "billing", **extra: object) -> dict:
    return {"id": f"r{i}", "text": f"message {i}", "category": category, "channel": "chat", "split": "test",
            **extra}


def test_unknown_gold_label_names_the_file_line(project: Path) -> None:
    task = _task_with(project, [_row(1), _row(2, "sales"), _row(3)])
    with pytest.raises(SpecError) as caught:
        load_samples(load_task(task), cache_dir=project / ".cache", offline=True)
    assert "'sales' (1 rows, first at" in str(caught.value) and "triage.jsonl:2" in str(caught.value)


def test_duplicate_ids_are_refused(project: Path) -> None:
    task = _task_with(project, [_row(1), _row(1), _row(2)])
    with pytest.raises(DatasetError, match="duplicate id"):
        load_samples(load_task(task), cache_dir=project / ".cache", offline=True)


def test_missing_column_lists_what_exists(project: Path) -> None:
    task = _task_with(project, [_row(1), _row(2)], **{"text_column: text": "text_column: body"})
    with pytest.raises(SpecError) as caught:
        load_samples(load_task(task), cache_dir=project / ".cache", offline=True)
    assert "column 'body' is not in the dataset" in str(caught.value)
    assert "columns available: category, channel, id, split, text" in str(caught.value)


def test_empty_text_names_the_line(project: Path) -> None:
    rows = [_row(1), _row(2), _row(3)]
    rows[2]["text"] = "  "
    task = _task_with(project, rows)
    with pytest.raises(DatasetError) as caught:
        load_samples(load_task(task), cache_dir=project / ".cache", offline=True)
    assert "triage.jsonl:3: row id=r3" in str(caught.value)


def test_missing_and_empty_files(project: Path) -> None:
    task = load_task(project / "tasks" / "triage.yaml")
    (project / "datasets" / "triage.jsonl").write_text("")
    with pytest.raises(DatasetError, match="empty"):
        load_samples(task, cache_dir=project / ".cache", offline=True)
    (project / "datasets" / "triage.jsonl").unlink()
    with pytest.raises(DatasetError, match="not found"):
        load_samples(task, cache_dir=project / ".cache", offline=True)


def test_iso_dates_in_json_come_back_as_written(project: Path) -> None:
    """Arrow turns "2026-02-22" into a timestamp; evalkit must hand back the string the file holds."""
    rows = [{"id": f"r{i}", "text": f"invoice {i}", "category": "billing", "channel": "chat", "split": "test",
             "when": "2026-02-22", "stamp": "2026-02-22T10:30:00"} for i in range(3)]
    task = _task_with(project, rows)
    samples = load_samples(load_task(task), cache_dir=project / ".cache", offline=True).samples
    assert samples[0].fields["when"] == "2026-02-22"
    assert samples[0].fields["stamp"].startswith("2026-02-22T10:30")
