"""The dataset sample: rows of the task's table, checked against the task, in a nested stratified order.

Rows come from :mod:`evalkit.tabular` (JSONL, JSON, CSV/TSV, Parquet, Arrow, save_to_disk, hub ids). The
sample order is fixed once per (rows, seed): every label stratum is shuffled with the seed, then the strata
are interleaved in proportion to their sizes. A sample of size n is the first n rows of that order, so it is
stratified at every n *and* a prefix of every larger sample: raising ``-n`` from 300 to 500 pays only for
the 200 new samples. Sequential looks read the same order.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evalkit import media
from evalkit._hashing import digest
from evalkit.errors import DatasetError
from evalkit.spec import DatasetSpec, TaskSpec
from evalkit.tabular import Table, content_hash, read_hub, read_table


@dataclass(frozen=True)
class Attachment:
    """A PDF or an image a sample (or the task's static prefix) sends, checked and measured on load."""

    kind: str  # "document" | "image"
    media_type: str
    #: The bytes when they came from the dataset itself; None when read from ``origin`` (a file), which
    #: is read again when the request is built, so a large dataset of files is not held in memory.
    inline: bytes | None = field(repr=False)
    origin: str  # the path it was read from, or "(base64)" / "(bytes)"
    sha256: str
    size: int  # bytes
    pages: int = 0
    width: int = 0
    height: int = 0

    @property
    def data(self) -> bytes:
        if self.inline is not None:
            return self.inline
        try:
            data = Path(self.origin).read_bytes()
        except OSError as exc:
            raise DatasetError(f"cannot read {self.origin}: {exc.strerror}",
                               hint="the file was readable when the dataset loaded") from None
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise DatasetError(f"{self.origin} changed while evalkit was running",
                               hint="run again: the sample's input hash and cache key follow the new bytes")
        return data

    def block(self) -> dict[str, Any]:
        """The Messages API content block (base64 source)."""
        return {"type": self.kind, "source": {"type": "base64", "media_type": self.media_type,
                                              "data": base64.b64encode(self.data).decode("ascii")}}


@dataclass(frozen=True, slots=True)  # slots: one per sample or call, all kept (issue 20)
class Sample:
    """One row to evaluate. ``fields`` holds every column, for the prompt template."""

    id: str
    text: str
    label: Any  # gold: a class label (str), an object (extraction) or a text; None without gold
    fields: dict[str, Any]
    input_hash: str
    segments: dict[str, str] = field(default_factory=dict)
    #: The conversation (``input.messages``), validated: [{role, content}], user first and last.
    messages: tuple[dict[str, Any], ...] | None = None
    #: Documents and images (``input.documents`` / ``input.images``), in column order.
    attachments: tuple[Attachment, ...] = ()


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
    if task.input.used and spec.text_column not in available:
        del wanted["dataset.text_column"]  # the conversation or the documents are the input
    if task.input.messages:
        wanted["input.messages"] = task.input.messages
    for kind in ("documents", "images"):
        for index, column in enumerate(getattr(task.input, kind)):
            wanted[f"input.{kind}.{index}"] = column
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


_BASE64 = re.compile(r"^[A-Za-z0-9+/\s]+={0,2}\s*$")
_KIND_TYPES = {"document": (media.PDF,), "image": media.IMAGE_TYPES}


def _read_media(value: Any, kind: str, base_dir: Path, where: str) -> tuple[bytes, str]:
    """(bytes, origin) of one document/image value: a path (relative to ``base_dir``), base64 text, bytes,
    or a datasets-style {"bytes": …, "path": …} / {"data": base64} object."""
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            value = value["bytes"]
        elif value.get("data") is not None:
            value = value["data"]
        elif value.get("path") is not None:
            value = value["path"]
        else:
            raise DatasetError(f"{where}: an object without 'bytes', 'data' or 'path'",
                               hint=f"give each {kind} as a file path, base64 text or bytes")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value), "(bytes)"
    if not isinstance(value, str) or not value.strip():
        got = type(value).__name__ if value is not None else "null"
        raise DatasetError(f"{where}: no {kind} (got {got})",
                           hint=f"give each row's {kind} as a file path relative to the dataset file, base64 "
                                "text or bytes; remove rows that have none")
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base_dir / path
    looks_like_path = len(value) < 1024 and ("/" in value or "." in value[-6:]) and "\n" not in value
    if looks_like_path and not (len(value) > 200 and _BASE64.match(value)):
        try:
            return path.read_bytes(), str(path)
        except FileNotFoundError:
            raise DatasetError(f"{where}: file not found: {path}",
                               hint="paths are relative to the dataset file's folder "
                                    f"({base_dir})") from None
        except OSError as exc:
            raise DatasetError(f"{where}: cannot read {path}: {exc.strerror}") from None
    if _BASE64.match(value):
        try:
            return media.decode_base64("".join(value.split())), "(base64)"
        except media.MediaError as exc:
            raise DatasetError(f"{where}: {exc}", hint="give a file path or valid base64") from None
    raise DatasetError(f"{where}: {value[:60]!r} is neither a file path nor base64 data",
                       hint="paths are relative to the dataset file's folder")


def load_attachment(value: Any, kind: str, base_dir: Path, where: str) -> Attachment:
    """One checked document or image: the right type, readable, within the API's limits."""
    data, origin = _read_media(value, kind, base_dir, where)
    found = media.sniff(data)
    shown = origin if origin.startswith("(") else Path(origin).name
    if found not in _KIND_TYPES[kind]:
        wanted = "a PDF" if kind == "document" else "a JPEG, PNG, GIF or WebP image"
        what = f"{found}" if found else "not a PDF or a supported image"
        other = ("input.images" if found in media.IMAGE_TYPES else "input.documents"
                 if found == media.PDF else None)
        raise DatasetError(f"{where}: {shown} is {what}, but this column must hold {wanted}",
                           hint=f"list the column under {other}" if other else
                           "convert the file (Word, Excel, TIFF … are not accepted by the API)")
    inline = data if origin.startswith("(") else None
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        if kind == "document":
            info = media.check_pdf(data)
            return Attachment(kind, media.PDF, inline, origin, sha256, len(data), pages=info.pages)
        width, height = media.check_image(data)
    except media.MediaError as exc:
        raise DatasetError(f"{where}: {shown}: {exc}",
                           hint="fix or replace the file; limits are listed in docs/inputs.md") from None
    return Attachment(kind, str(found), inline, origin, sha256, len(data), width=width, height=height)


def _attachments(task: TaskSpec, row: dict[str, Any], base_dir: Path, place: str,
                 sample_id: str) -> tuple[Attachment, ...]:
    out: list[Attachment] = []
    for kind, columns in (("document", task.input.documents), ("image", task.input.images)):
        for column in columns:
            values = row.get(column)
            for index, value in enumerate(values if isinstance(values, list) else [values]):
                suffix = f"[{index}]" if isinstance(values, list) else ""
                out.append(load_attachment(value, kind, base_dir,
                                           f"{place}: row id={sample_id}: '{column}'{suffix}"))
    return tuple(out)


def check_limits(task: TaskSpec, attachments: tuple[Attachment, ...], extra: tuple[Attachment, ...],
                 where: str) -> None:
    """A request's documents and images together within the API's per-request limits, for both models."""
    every = (*extra, *attachments)
    if not every:
        return
    models = [task.models.role(role).model for role in ("candidate", "reference")]
    pages = sum(a.pages for a in every if a.kind == "document")
    images = [a for a in every if a.kind == "image"]
    for model in models:
        limit = media.page_limit(model)
        if pages > limit:
            raise DatasetError(f"{where}: its documents have {pages} pages; a request to {model} may hold at "
                               f"most {limit}", hint="split the documents or send fewer per row")
        if len(images) > limit:
            raise DatasetError(f"{where}: {len(images)} images; a request to {model} may hold at most "
                               f"{limit}", hint="send fewer images per row")
    if len(images) > media.MANY_IMAGES:
        for image in images:
            if max(image.width, image.height) > media.MANY_IMAGES_EDGE:
                raise DatasetError(
                    f"{where}: {len(images)} images in one request, and {Path(image.origin).name} is "
                    f"{image.width}x{image.height}: with more than {media.MANY_IMAGES} images each must be "
                    f"at most {media.MANY_IMAGES_EDGE} px", hint="resize the images or send fewer per row")
    size = sum(4 * -(-a.size // 3) for a in every)  # base64-encoded
    if size > media.MAX_REQUEST_BYTES - 1024 * 1024:
        raise DatasetError(f"{where}: its documents and images are {size / 2**20:.1f} MB base64-encoded; a "
                           f"request may be at most {media.MAX_REQUEST_BYTES // 2**20} MB",
                           hint="downsample the images, split the PDFs, or send fewer per row")


_STATIC: dict[tuple[Any, ...], tuple[Attachment, ...]] = {}


def static_attachments(task: TaskSpec) -> tuple[Attachment, ...]:
    """The task's ``input.static_documents``, read and checked once per task file set."""
    paths = tuple((task.base_dir / name).resolve() for name in task.input.static_documents)
    memo = tuple((path, *((path.stat().st_mtime_ns, path.stat().st_size) if path.is_file() else ()))
                 for path in paths)  # an edited file is read again
    if memo not in _STATIC:
        loaded = []
        for index, path in enumerate(paths):
            key = f"input.static_documents.{index}"
            try:
                loaded.append(load_attachment(str(path), "document", task.base_dir, key))
            except DatasetError as exc:
                raise task.error(key, exc.message, hint=exc.hint or "paths are relative to the task file"
                                 ) from None
        _STATIC[memo] = tuple(loaded)
    return _STATIC[memo]


_ROLES = ("user", "assistant")
_BLOCK_TYPES = ("text", "image", "document")


def check_conversation(value: Any, where: str) -> tuple[dict[str, Any], ...]:
    """A dataset conversation as the Messages API takes it: [{role, content}] with alternating roles,
    user first and last, content a non-empty string or a list of text/image/document blocks."""
    hint = ('a list like [{"role": "user", "content": "…"}, {"role": "assistant", "content": "…"}, '
            '{"role": "user", "content": "…"}]')
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: not valid JSON ({exc.msg})", hint=hint) from None
    if not isinstance(value, list) or not value:
        raise DatasetError(f"{where}: the conversation must be a non-empty list of messages", hint=hint)
    out = []
    for index, message in enumerate(value):
        at = f"{where}: message {index}"
        if not isinstance(message, dict):
            raise DatasetError(f"{at} is {type(message).__name__}, not an object with role and content",
                               hint=hint)
        extra = sorted(set(message) - {"role", "content"})
        if extra:
            raise DatasetError(f"{at} has unknown key(s) {', '.join(extra)}",
                               hint="a message has only 'role' and 'content'")
        role = message.get("role")
        if role not in _ROLES:
            raise DatasetError(f"{at}: role must be 'user' or 'assistant', got {role!r}",
                               hint="a system prompt goes in prompt.system, not in the conversation")
        wanted = _ROLES[index % 2]
        if role != wanted:
            raise DatasetError(f"{at} is a {role} turn where a {wanted} turn is due: the conversation must "
                               "start with a user turn and alternate user/assistant",
                               hint="merge consecutive turns of the same role into one")
        content = message.get("content")
        if isinstance(content, str):
            if not content.strip():
                raise DatasetError(f"{at} has empty content", hint="remove the message or fill it in")
            content = [{"type": "text", "text": content}]
        elif isinstance(content, list) and content:
            for b_index, block in enumerate(content):
                kind = block.get("type") if isinstance(block, dict) else None
                if kind not in _BLOCK_TYPES:
                    raise DatasetError(f"{at}, block {b_index}: type must be one of {', '.join(_BLOCK_TYPES)}"
                                       f", got {kind!r}", hint="content is a string or a list of blocks")
                if kind == "text" and not (isinstance(block.get("text"), str) and block["text"].strip()):
                    raise DatasetError(f"{at}, block {b_index}: a text block needs non-empty 'text'")
                if kind != "text" and not isinstance(block.get("source"), dict):
                    raise DatasetError(f"{at}, block {b_index}: an {kind} block needs a 'source'",
                                       hint="or put the file in a column listed under input.documents / "
                                            "input.images")
            content = [dict(block) for block in content]
        else:
            raise DatasetError(f"{at}: content must be a non-empty string or list of content blocks",
                               hint=hint)
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "user":
        raise DatasetError(f"{where}: the conversation ends with an assistant turn; it must end with "
                           "the user turn the model answers",
                           hint="drop the last assistant message (current models refuse prefill)")
    return tuple(out)


def _last_user_text(messages: tuple[dict[str, Any], ...]) -> str:
    return "\n".join(block["text"] for block in messages[-1]["content"] if block.get("type") == "text")


def dataset_dir(task: TaskSpec) -> Path:
    """The folder that documents' and images' relative paths start from: the dataset file's."""
    if task.dataset.path is None:
        return task.base_dir
    path = Path(task.dataset.path).expanduser()
    path = path if path.is_absolute() else task.base_dir / path
    return path if path.is_dir() else path.parent


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
    media_dir = dataset_dir(task)
    static = static_attachments(task) if task.input.static_documents else ()
    for (index, row), sample_id in zip(kept_at, ids, strict=True):
        text = row.get(spec.text_column)
        messages: tuple[dict[str, Any], ...] | None = None
        attachments: tuple[Attachment, ...] = ()
        if task.input.used:
            where = f"{table.places[index]}: row id={sample_id}"
            if task.input.messages:
                messages = check_conversation(row.get(task.input.messages), f"{where}: "
                                              f"'{task.input.messages}'")
            attachments = _attachments(task, row, media_dir, table.places[index], sample_id)
            check_limits(task, attachments, static, where)
            if text is None:
                text = _last_user_text(messages) if messages else "\n".join(
                    f"[{a.kind}: {Path(a.origin).name if not a.origin.startswith('(') else a.origin}]"
                    for a in attachments) or None
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
        # The files' bytes are part of the input: a changed PDF is a changed sample.
        input_hash = digest(row) if not attachments else digest(
            {"row": row, "files": [a.sha256 for a in attachments]})
        samples.append(
            Sample(id=sample_id, text=text, label=label, fields=row, input_hash=input_hash,
                   segments=segments, messages=messages, attachments=attachments)
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
