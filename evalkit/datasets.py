"""Dataset loading (through Hugging Face ``datasets``) and the stratified, seeded sample.

The sample is drawn once, deterministically from (rows, size, seed), and shuffled with the same seed so
its order is random but reproducible; sequential looks at the data rely on that order.
"""

from __future__ import annotations

import datetime
import errno
import json
import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evalkit._hashing import digest, digest_bytes
from evalkit.errors import DatasetError, StateError
from evalkit.spec import DatasetSpec, TaskSpec

_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


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


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    # Arrow infers timestamps from ISO date strings in JSON; give back the date as it was written.
    if isinstance(value, datetime.datetime):
        if value.time() == datetime.time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def _quiet_datasets() -> Any:
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    import datasets  # noqa: PLC0415 - heavy import, only when a dataset is actually loaded

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return datasets


def load_rows(spec: DatasetSpec, *, base_dir: Path, cache_dir: Path,
              offline: bool) -> tuple[list[dict[str, Any]], str, str]:
    """All rows of the dataset as dicts, plus a content hash and a human description of the source."""
    if spec.path is not None:
        path = Path(spec.path).expanduser()
        path = path if path.is_absolute() else (base_dir / path)
        if not path.is_file():
            raise DatasetError(
                f"dataset file not found: {path}",
                hint="dataset.path is relative to the task file; check the name and that the file exists",
            )
        builder = _BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise DatasetError(
                f"unsupported dataset file type '{path.suffix}' for {path}",
                hint=f"use one of {', '.join(sorted(_BUILDERS))}, or a Hugging Face hub id in dataset.hub",
            )
        raw = path.read_bytes()
        content_hash = digest_bytes(raw)
        if not raw:
            raise DatasetError(f"dataset file is empty: {path}", hint="add rows, one JSON object per line")
        if builder in ("json", "csv"):
            _check_utf8(path, raw)
        datasets = _quiet_datasets()
        try:
            loaded = datasets.load_dataset(builder, data_files=str(path), split="train",
                                           cache_dir=str(cache_dir / "hf-datasets"))
        except Exception as exc:  # HF raises many types for malformed files
            _raise_if_disk_full(exc, cache_dir / "hf-datasets")
            raise DatasetError(
                f"cannot read {path} as {builder}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                hint="each line of a .jsonl file must be one JSON object with the same keys",
            ) from None
        source = str(path)
    else:
        if offline:
            raise DatasetError(
                f"dataset.hub '{spec.hub}' needs the network, but this run is offline",
                hint="download it once online, or export it to a local .jsonl and use dataset.path",
            )
        datasets = _quiet_datasets()
        try:
            loaded = datasets.load_dataset(spec.hub, spec.hub_config, split=spec.split,
                                           cache_dir=str(cache_dir / "hf-datasets"))
        except Exception as exc:
            _raise_if_disk_full(exc, cache_dir / "hf-datasets")
            raise DatasetError(f"cannot load hub dataset '{spec.hub}' (split {spec.split}): {exc}") from None
        content_hash = str(getattr(loaded, "_fingerprint", spec.hub))
        source = f"hf://{spec.hub}" + (f"/{spec.hub_config}" if spec.hub_config else "") + f"[{spec.split}]"
    try:
        rows = [_json_safe(row) for row in loaded.to_list()]
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{source}: a text value is not UTF-8 ({exc.reason})",
                           hint="save the dataset as UTF-8") from None
    return rows, content_hash, source


def _check_utf8(path: Path, raw: bytes) -> None:
    """A text dataset must be UTF-8: say where it is not (file:line:column), before anything parses it."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DatasetError(
            f"{path}:{line}:{column}: not UTF-8 text (byte 0x{raw[exc.start]:02x}: {exc.reason})",
            hint="save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 in.jsonl > out.jsonl`") from None


def _raise_if_disk_full(exc: BaseException, folder: Path) -> None:
    """A full disk under the datasets cache is not a malformed dataset: say which it is."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StateError(f"the disk holding {folder} is full: the dataset cannot be prepared there",
                             path=folder, hint="free some space, or move cache_dir in evalkit.toml / "
                                               "EVALKIT_CACHE_DIR to a disk with room") from None
        current = current.__cause__ or current.__context__


def _matches(row: dict[str, Any], where: dict[str, Any]) -> bool:
    for column, wanted in where.items():
        value = row.get(column)
        if isinstance(wanted, list):
            if value not in wanted:
                return False
        elif value != wanted:
            return False
    return True


def _check_columns(task: TaskSpec, rows: list[dict[str, Any]], source: str) -> None:
    spec = task.dataset
    available = sorted({key for row in rows[:1000] for key in row})
    wanted = {"dataset.id_column": spec.id_column, "dataset.text_column": spec.text_column}
    if spec.label_column:
        wanted["dataset.label_column"] = spec.label_column
    for where_column in spec.where:
        wanted[f"dataset.where.{where_column}"] = where_column
    for index, column in enumerate(spec.segment_columns):
        wanted[f"dataset.segment_columns[{index}]"] = column
    for key, column in wanted.items():
        if column not in available:
            raise task.error(
                key,
                f"column '{column}' is not in the dataset {source}",
                hint=f"columns available: {', '.join(available)}",
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


def _row_place(source: str, index: int) -> str:
    """``file:line`` of a row in a local file (csv has a header line), else the row number."""
    if source.endswith(".csv"):
        return f"{source}:{index + 2}"
    if source.endswith(".jsonl"):
        return f"{source}:{index + 1}"
    return f"{source} row {index + 1}"


def build_samples(task: TaskSpec, rows: list[dict[str, Any]], source: str) -> tuple[list[Sample], list[str]]:
    """Filter, validate and convert rows to samples (all of them, before sampling)."""
    spec = task.dataset
    notes: list[str] = []
    if not rows:
        raise DatasetError(f"dataset {source} has no rows", hint="check the file or the hub split")
    _check_columns(task, rows, source)
    kept_at = [(index, row) for index, row in enumerate(rows) if _matches(row, spec.where)]
    kept = [row for _, row in kept_at]
    if not kept:
        raise task.error("dataset.where", f"no rows of {source} match {spec.where}",
                         hint="check the column values; filters compare exactly (case and type)")
    ids = [str(row.get(spec.id_column)) for row in kept]
    duplicates = [value for value, count in Counter(ids).items() if count > 1]
    if duplicates:
        shown = ", ".join(duplicates[:5]) + (" …" if len(duplicates) > 5 else "")
        raise DatasetError(
            f"{len(duplicates)} duplicate id(s) in column '{spec.id_column}' of {source}: {shown}",
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
                f"{_row_place(source, index)}: row id={sample_id} has an empty or non-text "
                f"'{spec.text_column}'",
                hint="remove the row or fill in the text",
            )
        label: str | dict[str, Any] | None = None
        if spec.label_column:
            raw = row.get(spec.label_column)
            if raw is None or raw == "":
                raise DatasetError(f"{_row_place(source, index)}: row id={sample_id} has no gold label in "
                                   f"'{spec.label_column}'",
                                   hint="label every row, or remove dataset.label_column to score against "
                                        "the reference")
            if task.output.kind == "extraction":
                label = _gold_object(raw, _row_place(source, index), sample_id, spec.label_column)
            else:
                label = str(raw)
                if task.output.kind == "classification" and label not in allowed:
                    unknown_labels[label] += 1
                    first_seen.setdefault(label, _row_place(source, index))
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


def stratified_sample(samples: list[Sample], size: int, seed: int, stratify: bool) -> list[Sample]:
    """``size`` samples, allocated to label strata in proportion (largest remainder), then shuffled.

    Written by hand rather than with sklearn's ``train_test_split(stratify=...)`` because that refuses
    strata with a single member and gives no control over the final order.
    """
    rng = np.random.default_rng(seed)
    if size >= len(samples):
        chosen = list(samples)
    elif not stratify or any(not isinstance(s.label, str) for s in samples):  # only class labels stratify
        picks = rng.choice(len(samples), size=size, replace=False)
        chosen = [samples[i] for i in sorted(picks)]
    else:
        strata: dict[str, list[Sample]] = defaultdict(list)
        for sample in samples:
            strata[sample.label or ""].append(sample)
        labels = sorted(strata)
        exact = {label: size * len(strata[label]) / len(samples) for label in labels}
        quota = {label: math.floor(exact[label]) for label in labels}
        remainder = size - sum(quota.values())
        for label in sorted(labels, key=lambda lab: (-(exact[lab] - quota[lab]), lab))[:remainder]:
            quota[label] += 1
        chosen = []
        for label in labels:
            members = strata[label]
            picks = rng.choice(len(members), size=min(quota[label], len(members)), replace=False)
            chosen.extend(members[i] for i in sorted(picks))
    order = rng.permutation(len(chosen))
    return [chosen[i] for i in order]


def load_samples(task: TaskSpec, *, cache_dir: Path, offline: bool, size: int | None = None,
                 seed: int | None = None) -> SampleSet:
    """Load the task's dataset and draw its sample."""
    rows, content_hash, source = load_rows(task.dataset, base_dir=task.base_dir, cache_dir=cache_dir,
                                           offline=offline)
    samples, notes = build_samples(task, rows, source)
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
    return SampleSet(samples=chosen, dataset_hash=content_hash, dataset_source=source,
                     rows_available=len(samples), notes=notes)
