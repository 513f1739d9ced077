"""Getting started: ``evalkit init`` writes a task from a dataset, ``evalkit demo`` sets up the demo anywhere.

``init`` reads the table, infers which column holds the text, the gold label and the id (and a split
column, whose training rows the offline simulator then learns from), and writes a commented task file the
user can run at once — plus an ``evalkit.toml`` when the folder has none. The demo's task, data and
settings ship inside the package, so ``pip install evalkit && evalkit demo`` gives the same report in any
folder as in the repository.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from evalkit.config import SETTINGS_FILE, find_settings_file
from evalkit.errors import DatasetError, UsageError
from evalkit.spec import load_task
from evalkit.tabular import read_table

_ID_NAMES = ("id", "uid", "uuid", "guid", "ticket_id", "example_id", "idx", "row_id", "key")
_LABEL_NAMES = ("label", "labels", "category", "class", "intent", "target", "topic", "y", "gold", "queue")
_SPLIT_NAMES = ("split", "set", "partition", "fold", "subset")
_MAX_LABELS = 500


@dataclass(frozen=True)
class Inferred:
    """What ``init`` concluded about a table's columns."""

    rows: int
    text_column: str
    label_column: str | None
    id_column: str | None
    labels: list[str]
    split_column: str | None
    splits: list[str]
    columns: list[str]


def _strings(rows: list[dict[str, Any]], column: str) -> list[str]:
    return [str(row.get(column)) for row in rows if row.get(column) not in (None, "")]


def infer_columns(rows: list[dict[str, Any]]) -> Inferred:
    if not rows:
        raise DatasetError("the dataset has no rows", hint="point evalkit init at a table with a header and "
                                                           "rows")
    columns = list(rows[0])
    lowered = {c.lower(): c for c in columns}
    id_column = next((lowered[n] for n in _ID_NAMES if n in lowered
                      and len(set(_strings(rows, lowered[n]))) == len(rows)), None)
    split_column = next((lowered[n] for n in _SPLIT_NAMES if n in lowered), None)
    splits = sorted(set(_strings(rows, split_column))) if split_column else []
    if split_column and not 1 < len(splits) <= 5:
        split_column, splits = None, []

    def mean_length(column: str) -> float:
        values = _strings(rows, column)
        return sum(len(v) for v in values) / max(len(values), 1)

    candidates = [c for c in columns if c not in (id_column, split_column)]
    label_column = None
    for column in sorted(candidates, key=lambda c: (c.lower() not in _LABEL_NAMES, mean_length(c))):
        values = _strings(rows, column)
        distinct = set(values)
        if 2 <= len(distinct) <= min(_MAX_LABELS, max(2, len(values) // 2)) and mean_length(column) < 60:
            label_column = column
            break
    text_options = [c for c in candidates if c != label_column]
    if not text_options:
        raise DatasetError(f"no text column found among {', '.join(columns)}",
                           hint="the table needs a column with the input text of each sample")
    text_column = max(text_options, key=mean_length)
    labels = sorted(Counter(_strings(rows, label_column))) if label_column else []
    return Inferred(rows=len(rows), text_column=text_column, label_column=label_column, id_column=id_column,
                    labels=labels, split_column=split_column, splits=splits, columns=columns)


def _yaml_scalar(value: str) -> str:
    return value if re.fullmatch(r"[A-Za-z_][\w.-]*", value) else '"' + value.replace('"', '\\"') + '"'


def task_yaml(name: str, dataset: str, found: Inferred) -> str:
    """A commented task file for the inferred columns."""
    if found.label_column is None:
        raise DatasetError(f"no label column found among {', '.join(found.columns)} (a column with a few "
                           "repeated values)", hint="evalkit init writes classification tasks; see "
                                                    "tasks/*.yaml "
                           "for extraction and free-text tasks")
    evaluate = train = None
    if found.split_column:
        evaluate = next((s for s in found.splits if s.lower() in ("test", "eval", "validation", "dev")), None)
        train = next((s for s in found.splits if s.lower() == "train"), None)
    lines = [
        f"# {name}: can the cheap model route these as well as the reference? (written by `evalkit init`)",
        "# Run it:  evalkit validate tasks/" + f"{name}.yaml   then   evalkit run tasks/{name}.yaml",
        f"name: {name}",
        "",
        "dataset:",
        f"  path: {dataset}",
    ]
    if evaluate:
        lines.append(f"  where: {{{found.split_column}: {_yaml_scalar(evaluate)}}}   # the rows evaluated")
    lines.append(f"  id_column: {_yaml_scalar(found.id_column) if found.id_column else 'null'}"
                 + ("" if found.id_column else "   # no id column: ids derived from each row's text"))
    lines += [f"  text_column: {_yaml_scalar(found.text_column)}",
              f"  label_column: {_yaml_scalar(found.label_column)}   # gold labels: decisions are made "
              "against them",
              "",
              "sample:",
              "  size: 300                     # 200–500 is the useful range",
              "  seed: 0",
              "",
              "prompt:",
              "  system: |",
              "    Read one message and choose the label that fits it best.",
              "",
              "    Labels:",
              "    {% for name in labels %}",
              "    - {{ name }}",
              "    {% endfor %}",
              "",
              "    confidence is your probability (0 to 1) that the label is right; set escalate when",
              "    unsure.",
              "    Answer with JSON only, matching the schema.",
              '  user: "{{ text }}"',
              "",
              "output:",
              f"  label_field: {_yaml_scalar(found.label_column)}",
              "  labels:                       # describe each label: the model reads these",
              *(f"    {_yaml_scalar(label)}: \"\"" for label in found.labels),
              "  confidence_field: confidence",
              "  escalate_field: escalate",
              "",
              "models:",
              "  candidate: claude-haiku-5-5",
              "  reference: claude-sonnet-5-5",
              "  effort: low                   # thinking counts toward max_tokens: low effort, room to "
              "answer",
              "  max_tokens: 1024",
              "",
              "decision:",
              "  margin: 0.05                  # 5 points",
              ""]
    if train and evaluate:
        lines += ["simulator:                      # offline, the simulated models learn this domain from "
                  "these rows",
                  f"  train: {{where: {{{found.split_column}: {_yaml_scalar(train)}}}}}", ""]
    return "\n".join(lines)


SETTINGS_TEMPLATE = """# Project defaults for evalkit (see `evalkit --help`). Paths are relative to this file.
[evalkit]
cache_dir = ".evalkit/cache"     # every paid answer: re-runs cost nothing
reports_dir = "reports"          # reports/<task>/<run-id>/
concurrency = 8
"""


@dataclass(frozen=True)
class Initialised:
    task_file: Path
    settings_file: Path | None  # written now (None: one was already there)
    found: Inferred
    simulator_learns: bool


def init_task(dataset: Path, *, folder: Path, name: str | None = None, force: bool = False) -> Initialised:
    """Write ``tasks/<name>.yaml`` (and ``evalkit.toml`` when there is none) for ``dataset``."""
    table = read_table(dataset)
    found = infer_columns(table.rows)
    name = name or re.sub(r"[^a-z0-9_-]+", "_", dataset.stem.lower()).strip("_-")[:64] or "task"
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name):
        raise UsageError(f"task name {name!r} must be lower-case letters, digits, '_' or '-'",
                         hint="use --name")
    tasks = folder / "tasks"
    task_file = tasks / f"{name}.yaml"
    if task_file.exists() and not force:
        raise UsageError(f"{task_file} exists",
                         hint="use --force to overwrite it, or --name for another task")
    tasks.mkdir(parents=True, exist_ok=True)
    relative = Path(os.path.relpath(dataset.resolve(), tasks.resolve())).as_posix()
    text = task_yaml(name, relative, found)
    task_file.write_text(text, encoding="utf-8")
    load_task(task_file)  # what init writes must load
    settings = None
    if find_settings_file(folder) is None:
        settings = folder / SETTINGS_FILE
        settings.write_text(SETTINGS_TEMPLATE, encoding="utf-8")
    return Initialised(task_file=task_file, settings_file=settings, found=found,
                       simulator_learns="simulator:" in text)


def demo_files() -> Path:
    """The demo project inside the installed package (task, dataset, settings)."""
    return Path(str(resources.files("evalkit").joinpath("data/demo")))


def setup_demo(folder: Path) -> Path:
    """Copy the demo project into ``folder`` (keeping files already there); returns its task file."""
    source = demo_files()
    for path in sorted(source.rglob("*")):
        if path.is_file():
            target = folder / path.relative_to(source)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
    return folder / "tasks" / "triage.yaml"
