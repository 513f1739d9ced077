"""Datasets as users have them: TSV, CSV without ids, Arrow, save_to_disk, a cached hub id — and samples that
nest, so raising -n pays only for the new samples."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.datasets import derived_ids, load_samples
from evalkit.errors import DatasetError
from evalkit.sim.app import Ledger
from evalkit.spec import load_task

REPO = Path(__file__).resolve().parents[1]


def _triage_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (REPO / "datasets" / "triage.jsonl").read_text().splitlines()]


def _point_task_at(project: Path, path: str, extra: str = "") -> Path:
    task = project / "tasks" / "triage.yaml"
    text = task.read_text().replace("  path: ../datasets/triage.jsonl\n", f"  path: {path}\n{extra}")
    task.write_text(text)
    return task


def _samples(task: Path, size: int = 60) -> list[Any]:
    spec = load_task(task)
    return load_samples(spec, cache_dir=task.parent / ".cache", offline=True, size=size).samples


def _reference(project: Path, size: int = 60) -> list[tuple[str, str, str]]:
    return [(s.id, s.text, s.label) for s in _samples(project / "tasks" / "triage.yaml", size)]


def test_a_tsv_file_loads_like_the_jsonl_it_came_from(project: Path) -> None:
    expected = _reference(project)
    rows = _triage_rows()
    columns = list(rows[0])
    with (project / "datasets" / "triage.tsv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    task = _point_task_at(project, "../datasets/triage.tsv")
    assert [(s.id, s.text, s.label) for s in _samples(task)] == expected  # where: {split: test} still matches

    semicolons = project / "datasets" / "triage.txt"
    with semicolons.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, delimiter=";")
        writer.writeheader()
        writer.writerows(rows)
    task.write_text(task.read_text().replace("../datasets/triage.tsv", "../datasets/triage.txt"))
    assert [(s.id, s.text, s.label) for s in _samples(task)] == expected  # the delimiter is inferred


def test_a_csv_without_ids_gets_stable_row_derived_ids(project: Path) -> None:
    rows = [{k: v for k, v in row.items() if k != "id"} for row in _triage_rows()]
    path = project / "datasets" / "noid.csv"

    def write(ordered: list[dict[str, Any]]) -> None:
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(ordered[0]))
            writer.writeheader()
            writer.writerows(ordered)

    write(rows)
    task = _point_task_at(project, "../datasets/noid.csv")
    task.write_text(task.read_text().replace("  id_column: id\n", ""))  # the default: 'id', if there is one
    spec = load_task(task)
    first = load_samples(spec, cache_dir=project / ".cache", offline=True, size=468)
    assert any("derived from each row's text" in note for note in first.notes)
    assert all(s.id.startswith("r-") for s in first.samples)
    write(list(reversed(rows)))  # the same rows in another order keep their ids
    again = load_samples(spec, cache_dir=project / ".cache", offline=True, size=468)
    assert {s.id: s.text for s in again.samples} == {s.id: s.text for s in first.samples}
    assert derived_ids(["same", "other", "same"])[2].endswith("-2")

    task.write_text(task.read_text().replace("dataset:\n", "dataset:\n  id_column: ticket\n", 1))
    with pytest.raises(Exception, match="column 'ticket' is not in the dataset"):
        load_samples(load_task(task), cache_dir=project / ".cache", offline=True)


def test_arrow_files_and_save_to_disk_folders_load(project: Path) -> None:
    import datasets

    expected = _reference(project)
    table = datasets.Dataset.from_list(_triage_rows())
    folder = project / "datasets" / "triage_disk"
    table.save_to_disk(str(folder))
    task = _point_task_at(project, "../datasets/triage_disk")
    assert [(s.id, s.text, s.label) for s in _samples(task)] == expected
    arrow = next(folder.glob("*.arrow"))
    shutil.copy(arrow, project / "datasets" / "triage.arrow")
    task.write_text(task.read_text().replace("../datasets/triage_disk", "../datasets/triage.arrow"))
    assert [(s.id, s.text, s.label) for s in _samples(task)] == expected

    empty = project / "datasets" / "not_a_dataset"
    empty.mkdir()
    task.write_text(task.read_text().replace("../datasets/triage.arrow", "../datasets/not_a_dataset"))
    with pytest.raises(DatasetError, match="not a dataset file or a datasets.save_to_disk folder"):
        _samples(task)


def _cache_hub_dataset(cache: Path, repo: str, rows: list[dict[str, Any]]) -> None:
    """What a previous online `load_dataset(repo)` leaves in the Hugging Face datasets cache."""
    from datasets.packaged_modules.json.json import Json

    name = repo.split("/")[-1]
    cache.mkdir(parents=True, exist_ok=True)
    source = cache / "source.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    builder = Json(cache_dir=str(cache / "build"), data_files={"train": str(source)}, dataset_name=name,
                   config_name="default")
    builder.download_and_prepare()
    built = Path(builder.cache_dir)
    target = cache / repo.replace("/", "___") / "default" / "0.0.0" / "cached"
    target.mkdir(parents=True)
    for file in built.iterdir():
        shutil.copy(file, target / file.name)


@pytest.mark.e2e
def test_a_hub_dataset_is_used_from_the_local_cache_without_network_or_key(project: Path,
                                                                            monkeypatch: pytest.MonkeyPatch,
                                                                            tmp_path: Path) -> None:
    import datasets

    cache = tmp_path / "hf"
    _cache_hub_dataset(cache, "acme/triage-tickets", _triage_rows())
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(cache))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    task = project / "tasks" / "triage.yaml"
    task.write_text(task.read_text().replace("  path: ../datasets/triage.jsonl\n",
                                             "  hub: acme/triage-tickets\n"))
    assert [(s.id, s.label) for s in _samples(task)] == [(i, label) for i, _, label in
                                                         _reference_from(project)]
    checked = CliRunner().invoke(main, ["validate", str(task), "-n", "60"])  # no ANTHROPIC_API_KEY is set
    assert checked.exit_code == 0, checked.output
    assert "hf://acme/triage-tickets" in checked.output

    task.write_text(task.read_text().replace("acme/triage-tickets", "acme/never-downloaded"))
    result = CliRunner().invoke(main, ["validate", str(task)])
    assert result.exit_code == 2 and "local Hugging Face cache" in result.output


def _reference_from(project: Path) -> list[tuple[str, str, str]]:
    other = project.parent / "reference-project"
    if not other.exists():
        shutil.copytree(project, other)
        task = other / "tasks" / "triage.yaml"
        task.write_text(task.read_text().replace("  hub: acme/triage-tickets\n",
                                                 "  path: ../datasets/triage.jsonl\n"))
    return _reference(other)


@pytest.mark.e2e
def test_a_larger_sample_contains_the_smaller_one_and_pays_only_for_the_new_rows(project: Path) -> None:
    task = project / "tasks" / "triage.yaml"
    # All 780 rows, so that 500 exist. The simulator then also trained on some evaluated rows and the
    # validity gate rightly calls both runs INVALID-RUN (exit 7); what is measured here is what is paid.
    task.write_text(task.read_text().replace("  where: {split: test}", "  where: {}"))
    ledger = project / ".evalkit" / "simulator" / "billing.jsonl"
    first = CliRunner().invoke(main, ["run", str(task), "-q", "-n", "300", "--mode", "realtime",
                                      "--run-id", "a"])
    assert first.exit_code in (0, 7), first.output
    before = len(Ledger.read(ledger))
    assert before == 600
    second = CliRunner().invoke(main, ["run", str(task), "-q", "-n", "500", "--mode", "realtime",
                                       "--run-id", "b"])
    assert second.exit_code in (0, 7), second.output
    assert len(Ledger.read(ledger)) - before == 400  # only the 200 new samples, for both models
    small, large = ([json.loads(line)["id"] for line in (project / f"reports/triage/{run}/results.jsonl")
                      .read_text().splitlines()] for run in ("a", "b"))
    assert large[:300] == small
