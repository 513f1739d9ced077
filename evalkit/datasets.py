"""The dataset sample: rows of the task's table, checked against the task, in a nested stratified order.

Rows come from :mod:`evalkit.tabular` (JSONL, JSON, CSV/TSV, Parquet, Arrow, save_to_disk, hub ids). The
sample order is fixed once per (rows, seed): every label stratum is shuffled with the seed, then the strata
are interleaved in proportion to their sizes. A sample of size n is the first n rows of that order, so it is
stratified at every n *and* a prefix of every larger sample: raising ``-n`` from 300 to 500 pays only for
the 200 new samples. Sequential looks read the same order.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evalkit._hashing import digest
from evalkit.errors import DatasetError
from evalkit.spec import DatasetSpec, TaskSpec
from evalkit.tabular import Table, content_hash, read_hub, read_table


@dataclass(frozen=True)
class Sample:
    """One row to evaluate. ``fields`` holds every column, for the prompt template."""

    id: str
    text: str
    label: Any  # gold: a class label (str), an object (extraction) or a text; None without gold
    fields: dict[str, Any]
    input_hash: str
    segments: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SampleSet:
    samples: list[Sample]
    dataset_hash: str
    dataset_source: str
    rows_available: int
    notes: list[str]

    @property
    def sample_hash(self) -> str:
        return digest([[s.id, s.input_hash] for s in self.samples])

    @property
    def has_gold(self) -> bool:
        return bool(self.samples) and all(s.label is not None for s in self.samples)


def load_rows(spec: DatasetSpec, *, base_dir: Path, cache_dir: Path | None = None,
              offline: bool = False) -> tuple[Table, str]:
    """All rows of the dataset and a content hash. Hub datasets come from the local cache when offline
    (``cache_dir`` and ``offline`` are kept for callers; neither decides whether the hub is tried)."""
    if spec.path is not None:
        path = Path(spec.path).expanduser()
        path = path if path.is_absolute() else (base_dir / path)
        table = read_table(path, fmt=spec.format, delimiter=spec.delimiter, split=spec.split)
        return table, content_hash(path)
    table, fingerprint = read_hub(str(spec.hub), config=spec.hub_config, split=spec.split)
    source = f"hf://{spec.hub}" + (f"/{spec.hub_config}" if spec.hub_config else "") + f"[{spec.split}]"
    return Table(table.rows, table.places, source), fingerprint


def _same(value: Any, wanted: Any) -> bool:
    """Equal, or equal as text when the table stores text (CSV) and the filter a number or a bool."""
    if value == wanted:
        return True
    if isinstance(value, str) and not isinstance(wanted, str):
        text = str(wanted).lower() if isinstance(wanted, bool) else str(wanted)
        return value.strip().lower() == text if isinstance(wanted, bool) else value.strip() == text
    return False


def _matches(row: dict[str, Any], where: dict[str, Any]) -> bool:
    for column, wanted in where.items():
        value = row.get(column)
        options = wanted if isinstance(wanted, list) else [wanted]
        if not any(_same(value, option) for option in options):
            return False
    return True


def _check_columns(task: TaskSpec, rows: list[dict[str, Any]], source: str) -> None:
    spec = task.dataset
    available = sorted({key for row in rows[:1000] for key in row})
    wanted = {"dataset.text_column": spec.text_column}
    if spec.id_column is not None and ("id_column" in spec.model_fields_set or spec.id_column in available):
        wanted["dataset.id_column"] = spec.id_column
    if spec.label_column:
        wanted["dataset.label_column"] = spec.label_column
    for where_column in spec.where:
        wanted[f"dataset.where.{where_column}"] = where_column
    for index, column in enumerate(spec.segment_columns):
        wanted[f"dataset.segment_columns[{index}]"] = column
    for key, column in wanted.items():
        if column not in available:
            derived = " (or id_column: null for ids derived from each row's text)"
            extra = derived if key == "dataset.id_column" else ""
            raise task.error(
                key,
                f"column '{column}' is not in the dataset {source}",
                hint=f"columns available: {', '.join(available)}{extra}",
            )


def _gold_object(raw: Any, place: str, sample_id: str, column: str) -> dict[str, Any]:
    """Extraction gold: a JSON object, stored as an object or as a JSON string."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{place}: row id={sample_id}: '{column}' is not valid JSON ({exc.msg})",
                               hint="extraction gold must be a JSON object per row") from None
    if not isinstance(raw, dict):
        raise DatasetError(f"{place}: row id={sample_id}: '{column}' must be a JSON object, "
                           f"got {type(raw).__name__}",
                           hint="extraction gold must be a JSON object per row")
    return raw


def derived_ids(texts: list[str]) -> list[str]:
    """Stable ids for rows without an id column: ``r-`` + a hash of the row's text, so an id does not change
    when rows are re-ordered or others are added (while the text is unique); repeats get ``-2``, ``-3`` in
    file order."""
    seen: Counter[str] = Counter()
    out = []
    for text in texts:
        base = "r-" + hashlib.sha256(" ".join(text.split()).encode()).hexdigest()[:12]
        seen[base] += 1
        out.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return out


def build_samples(task: TaskSpec, table: Table) -> tuple[list[Sample], list[str]]:
    """Filter, validate and convert rows to samples (all of them, before sampling)."""
    spec = task.dataset
    rows, source = table.rows, table.source
    notes: list[str] = []
    if not rows:
        raise DatasetError(f"dataset {source} has no rows", hint="check the file or the hub split")
    _check_columns(task, rows, source)
    kept_at = [(index, row) for index, row in enumerate(rows) if _matches(row, spec.where)]
    kept = [row for _, row in kept_at]
    if not kept:
        raise task.error("dataset.where", f"no rows of {source} match {spec.where}",
                         hint="check the column values; filters compare exactly (case and type)")
    id_column = spec.id_column if spec.id_column is not None and spec.id_column in kept[0] else None
    if id_column is None:
        ids = derived_ids([str(row.get(spec.text_column) or "") for row in kept])
        if spec.id_column is not None:
            notes.append(f"the dataset has no '{spec.id_column}' column: sample ids are derived from each "
                         "row's "
                         "text (set dataset.id_column to use a column)")
    else:
        ids = [str(row.get(id_column)) for row in kept]
    duplicates = [value for value, count in Counter(ids).items() if count > 1]
    if duplicates:
        shown = ", ".join(duplicates[:5]) + (" …" if len(duplicates) > 5 else "")
        raise DatasetError(
            f"{len(duplicates)} duplicate id(s) in column '{id_column}' of {source}: {shown}",
            hint="ids must be unique; deduplicate the rows or point dataset.id_column at a unique column",
        )
    allowed = set(task.output.label_names)
    samples: list[Sample] = []
    unknown_labels: Counter[str] = Counter()
    first_seen: dict[str, str] = {}
    for (index, row), sample_id in zip(kept_at, ids, strict=True):
        text = row.get(spec.text_column)
        if not isinstance(text, str) or not text.strip():
            raise DatasetError(
                f"{table.places[index]}: row id={sample_id} has an empty or non-text "
                f"'{spec.text_column}'",
                hint="remove the row or fill in the text",
            )
        label: str | dict[str, Any] | None = None
        if spec.label_column:
            raw = row.get(spec.label_column)
            if raw is None or raw == "":
                raise DatasetError(f"{table.places[index]}: row id={sample_id} has no gold label in "
                                   f"'{spec.label_column}'",
                                   hint="label every row, or remove dataset.label_column to score against "
                                        "the reference")
            if task.output.kind == "extraction":
                label = _gold_object(raw, table.places[index], sample_id, spec.label_column)
            else:
                label = str(raw)
                if task.output.kind == "classification" and label not in allowed:
                    unknown_labels[label] += 1
                    first_seen.setdefault(label, table.places[index])
        segments = {column: str(row.get(column)) for column in spec.segment_columns}
        samples.append(
            Sample(id=sample_id, text=text, label=label, fields=row,
                   input_hash=digest(row), segments=segments)
        )
    if unknown_labels:
        listed = ", ".join(f"'{label}' ({count} rows, first at {first_seen[label]})"
                           for label, count in unknown_labels.most_common())
        raise task.error(
            "output.labels",
            f"the dataset's '{spec.label_column}' column has labels that are not in output.labels: {listed}",
            hint="add them to output.labels, or exclude those rows with dataset.where",
        )
    return samples, notes


def sample_order(samples: list[Sample], seed: int, stratify: bool) -> list[Sample]:
    """Every sample in the fixed evaluation order (see the module docstring).

    Each stratum's members are shuffled with ``seed``; member j of a stratum of size m is due at
    (j + 0.5) / m, and the strata are merged by due time (ties by label), so every prefix holds each label
    in proportion, within one sample. Written by hand because sklearn's stratified splitters neither nest
    nor fix an order, and refuse single-member strata.
    """
    rng = np.random.default_rng(seed)
    if not stratify or any(not isinstance(s.label, str) for s in samples):  # only class labels stratify
        return [samples[i] for i in rng.permutation(len(samples))]
    strata: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        strata[str(sample.label)].append(sample)
    keyed: list[tuple[float, int, Sample]] = []
    for rank, label in enumerate(sorted(strata)):
        members = strata[label]
        for position, index in enumerate(rng.permutation(len(members))):
            keyed.append(((position + 0.5) / len(members), rank, members[int(index)]))
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [sample for _, _, sample in keyed]


def stratified_sample(samples: list[Sample], size: int, seed: int, stratify: bool) -> list[Sample]:
    """The first ``size`` samples of :func:`sample_order`: stratified, and nested across sizes."""
    return sample_order(samples, seed, stratify)[:size]


def load_samples(task: TaskSpec, *, cache_dir: Path, offline: bool, size: int | None = None,
                 seed: int | None = None) -> SampleSet:
    """Load the task's dataset and draw its sample."""
    table, fingerprint = load_rows(task.dataset, base_dir=task.base_dir, cache_dir=cache_dir, offline=offline)
    samples, notes = build_samples(task, table)
    size = size if size is not None else task.sample.size
    seed = seed if seed is not None else task.sample.seed
    if size > len(samples):
        notes.append(f"sample size {size} is larger than the {len(samples)} matching rows; using all of them")
    if not 200 <= min(size, len(samples)) <= 500:
        notes.append(
            f"{min(size, len(samples))} samples is outside the 200–500 range evalkit is designed for; "
            "the decision may be underpowered (small) or the run needlessly costly (large)"
        )
    chosen = stratified_sample(samples, size, seed, task.sample.stratify)
    return SampleSet(samples=chosen, dataset_hash=fingerprint, dataset_source=table.source,
                     rows_available=len(samples), notes=notes)
