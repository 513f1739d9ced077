"""Getting started on data nobody here wrote: `evalkit init` on a dataset, and the demo from an installed
wheel in an empty folder."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.spec import load_task

REPO = Path(__file__).resolve().parents[1]
INTENTS = [f"intent_{i:02d}" for i in range(77)]


def _banking_like(path: Path, rows: int = 400) -> None:
    """A banking77-shaped CSV: text and a category among 77 intents, no id column, no split."""
    rng = random.Random(3)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "category"])
        for index in range(rows):
            intent = INTENTS[index % len(INTENTS)]
            words = intent.replace("_", " ")
            writer.writerow([f"How do I deal with {words} on card {rng.randint(100, 999)}?", intent])


def test_init_infers_columns_and_labels_and_the_task_runs_its_checks(tmp_path: Path) -> None:
    data = tmp_path / "data" / "banking.csv"
    data.parent.mkdir()
    _banking_like(data)
    result = CliRunner().invoke(main, ["init", str(data), "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    task_file = tmp_path / "tasks" / "banking.yaml"
    assert (tmp_path / "evalkit.toml").exists() and task_file.exists()
    task = load_task(task_file)
    assert task.dataset.text_column == "text" and task.dataset.label_column == "category"
    assert task.dataset.id_column is None and task.output.label_names == sorted(INTENTS)
    assert "evalkit validate" in result.output and "no training rows" in result.output
    again = CliRunner().invoke(main, ["init", str(data), "--dir", str(tmp_path)])
    assert again.exit_code == 2 and "--force" in again.output  # never overwrites silently


@pytest.mark.e2e
def test_init_with_a_split_lets_the_simulator_learn_the_new_domain(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in (REPO / "datasets" / "triage.jsonl").read_text().splitlines()]
    data = tmp_path / "tickets.tsv"
    with data.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["ticket_id", "message", "queue", "split"], delimiter="\t")
        writer.writeheader()
        writer.writerows({"ticket_id": r["id"], "message": r["text"], "queue": r["category"],
                          "split": r["split"]} for r in rows)
    result = CliRunner().invoke(main, ["init", str(data), "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    task_file = tmp_path / "tasks" / "tickets.yaml"
    task = load_task(task_file)
    assert task.dataset.id_column == "ticket_id" and task.dataset.where == {"split": "test"}
    assert task.simulator.train is not None and task.simulator.train.where == {"split": "train"}
    checked = CliRunner().invoke(main, ["validate", str(task_file), "-n", "40"])
    assert checked.exit_code == 0, checked.output  # the simulator has the task's own training rows
    run = CliRunner().invoke(main, ["run", str(task_file), "-n", "40", "--mode", "realtime"])
    assert run.exit_code == 0, run.output
    assert "answering from the corpus" in run.output and "tickets.tsv" in run.output


def test_the_packaged_demo_is_the_repositorys_demo() -> None:
    packaged = REPO / "evalkit" / "data" / "demo"
    assert (packaged / "tasks" / "triage.yaml").read_bytes() == (REPO / "tasks" / "triage.yaml").read_bytes()
    data = "datasets/triage.jsonl"
    assert (packaged / data).read_bytes() == (REPO / data).read_bytes()


def _decision(folder: Path) -> dict[str, object]:
    summary = json.loads(next(folder.glob("reports/triage/*/summary.json")).read_text())
    decision = summary["decision"]
    return {k: decision[k] for k in ("verdict", "loss", "loss_interval", "n")}


@pytest.mark.e2e
def test_the_demo_from_a_wheel_in_an_empty_folder_decides_as_the_checkout(tmp_path: Path,
                                                                          project: Path) -> None:
    built = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(built), str(REPO)],
                   check=True, capture_output=True)
    wheel = next(built.glob("evalkit-*.whl"))
    installed = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(installed)
    empty = tmp_path / "somewhere"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "EVALKIT_"))}
    env["PYTHONPATH"] = str(installed)  # the wheel's evalkit, not this checkout's
    demo = subprocess.run([sys.executable, "-m", "evalkit", "demo", "-q", "-n", "120", "--mode", "realtime"],
                          cwd=empty, env=env, capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stderr + demo.stdout
    assert str(installed) in subprocess.run([sys.executable, "-c", "import evalkit; print(evalkit.__file__)"],
                                            cwd=empty, env=env, capture_output=True, text=True).stdout
    assert "paid answers kept in" in demo.stdout and "SIMULATED" in demo.stdout
    checkout = CliRunner().invoke(main, ["run", str(project / "tasks" / "triage.yaml"), "-q", "-n", "120",
                                         "--mode", "realtime"])
    assert checkout.exit_code == 0, checkout.output
    assert _decision(empty / "evalkit-demo") == _decision(project)
