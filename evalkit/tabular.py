"""Tables as users have them, read into rows: JSON Lines, JSON, CSV/TSV, Parquet, Arrow, ``save_to_disk``
folders and Hugging Face hub ids.

Local text formats are read with the standard library (a CSV or JSONL file does not need the Hugging Face
machinery, and a broken line is reported as ``file:line``); Parquet and Arrow with pyarrow; ``save_to_disk``
folders and hub ids with ``datasets``, which serves a hub dataset from its local cache when the hub is out of
reach. Values come back JSON-safe (timestamps as ISO text, NaN as null).
"""

from __future__ import annotations

import base64
import csv
import datetime
import errno
import io
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.errors import DatasetError, StateError

#: File suffix -> format. A ``save_to_disk`` folder is format "disk".
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
           ".tab": "tsv", ".txt": "csv", ".parquet": "parquet", ".arrow": "arrow", ".feather": "arrow"}
_DISK_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


#: A row filter applied while a table is read.
Keep = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Table:
    rows: list[dict[str, Any]]
    #: 1-based line (or row) number of each row in the source, for messages.
    places: list[str]
    source: str


def json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):  # e.g. an image column: base64 text
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, datetime.datetime):
        if value.time() == datetime.time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def format_of(path: Path, declared: str | None = None) -> str:
    if declared:
        return declared
    if path.is_dir():
        if any((path / marker).exists() for marker in _DISK_MARKERS):
            return "disk"
        raise DatasetError(f"{path} is a folder, not a dataset file or a datasets.save_to_disk folder",
                           hint="point at a .jsonl/.json/.csv/.tsv/.parquet/.arrow file, or a folder "
                                "written by "
                                "datasets' save_to_disk (it holds dataset_info.json or dataset_dict.json)")
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise DatasetError(f"cannot tell the format of {path} from its suffix '{path.suffix}'",
                           hint=f"use one of {', '.join(sorted(FORMATS))}, or set dataset.format "
                                "(jsonl, json, csv, tsv, parquet, arrow, disk)")
    return found


def _not_utf8(path: Path, line: int, byte: int) -> DatasetError:
    return DatasetError(f"{path}:{line}: byte {byte:#04x} is not UTF-8 text",
                        hint="save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)")


def _text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, data[:exc.start].count(b"\n") + 1, data[exc.start]) from None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line, read one at a time so a large file is never held whole. Lines end
    at "\n" only: JSON text may hold a raw U+2028, which ``str.splitlines`` would split."""
    with path.open("rb") as handle:
        for number, data in enumerate(handle, start=1):
            try:
                yield number, data.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise _not_utf8(path, number, data[exc.start]) from None


def _jsonl(path: Path, keep: Keep | None = None) -> Table:
    rows, places = [], []
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})",
                               hint="each line of a .jsonl file must be one JSON object") from None
        if not isinstance(value, dict):
            raise DatasetError(f"{path}:{number}: expected a JSON object, got {type(value).__name__}",
                               hint="each line of a .jsonl file must be one JSON object")
        row = json_safe(value)
        if keep is not None and not keep(row):
            continue
        rows.append(row)
        places.append(f"{path}:{number}")
    return Table(rows, places, str(path))


def _json(path: Path) -> Table:
    try:
        value = json.loads(_text(path))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})",
                           hint="a .json dataset is an array of objects (or use .jsonl, one object per "
                                "line)") from None
    if isinstance(value, dict):
        for key in ("data", "rows", "records", "examples"):
            if isinstance(value.get(key), list):
                value = value[key]
                break
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        raise DatasetError(f"{path}: expected a JSON array of objects",
                           hint="write one object per row, e.g. [{\"id\": 1, \"text\": \"…\"}, …]")
    places = [f"{path} row {i + 1}" for i in range(len(value))]
    return Table([json_safe(row) for row in value], places, str(path))


def _delimited(path: Path, delimiter: str | None, fmt: str) -> Table:
    text = _text(path)
    if delimiter is None:
        if fmt == "tsv":
            delimiter = "\t"
        else:
            try:
                delimiter = csv.Sniffer().sniff(text[:20_000], delimiters=",;\t|").delimiter
            except csv.Error:
                delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetError(f"{path} is empty", hint="the first line names the columns") from None
    header = [name.strip() for name in header]
    if len(set(header)) != len(header):
        raise DatasetError(f"{path}:1: duplicate column names in the header: {header}",
                           hint="give every column a unique name")
    rows, places = [], []
    for record in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            shown = "tab" if delimiter == "\t" else repr(delimiter)
            raise DatasetError(f"{path}:{line}: {len(record)} fields where the header has {len(header)} "
                               f"(delimiter {shown})",
                               hint="quote fields that contain the delimiter, or set dataset.delimiter")
        rows.append(dict(zip(header, record, strict=True)))
        places.append(f"{path}:{line}")
    return Table(rows, places, str(path))


def _arrow(path: Path, fmt: str) -> Table:
    import pyarrow as pa  # noqa: PLC0415 - only for Arrow and Parquet files
    import pyarrow.parquet as pq  # noqa: PLC0415

    try:
        if fmt == "parquet":
            table = pq.read_table(path)
        else:
            with pa.memory_map(str(path)) as source:
                try:
                    table = pa.ipc.open_file(source).read_all()
                except pa.ArrowInvalid:
                    source.seek(0)
                    table = pa.ipc.open_stream(source).read_all()  # what datasets' save_to_disk writes
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(f"cannot read {path} as {fmt}: {exc}",
                           hint="is it an Arrow IPC (file or stream) / Parquet file?") from None
    rows = [json_safe(row) for row in table.to_pylist()]
    return Table(rows, [f"{path} row {i + 1}" for i in range(len(rows))], str(path))


def _quiet_datasets() -> Any:
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    import datasets  # noqa: PLC0415 - heavy import, only for save_to_disk folders and hub ids

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return datasets


def _disk(path: Path, split: str) -> Table:
    datasets = _quiet_datasets()
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001 - datasets raises many types
        _raise_if_disk_full(exc)
        raise DatasetError(f"cannot read the save_to_disk folder {path}: {exc}") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DatasetError(f"{path} has splits {', '.join(loaded)}, not '{split}'",
                               hint="set dataset.split to one of them")
        loaded = loaded[split]
    rows = [json_safe(row) for row in loaded.to_list()]
    return Table(rows, [f"{path} row {i + 1}" for i in range(len(rows))], str(path))


def _raise_if_disk_full(exc: BaseException) -> None:
    """A full disk under the Hugging Face datasets cache is not a malformed dataset: say which it is."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            folder = Path(os.environ.get("HF_DATASETS_CACHE") or Path.home() / ".cache" / "huggingface")
            raise StateError(f"the disk holding the datasets cache (hf-datasets, {folder}) is full: the "
                             "dataset cannot be prepared there", path=folder,
                             hint="free some space, or point HF_DATASETS_CACHE at a disk with room") from None
        current = current.__cause__ or current.__context__


def read_table(path: Path, *, fmt: str | None = None, delimiter: str | None = None,
               split: str = "train", keep: Keep | None = None) -> Table:
    """Every row of a local table (with ``keep``: the rows it accepts). Errors say the file, the line and
    what to do. A JSON Lines file is filtered while it is read, so a filter that keeps a few rows of a
    large file never holds the rest (the simulator's training rows of a 100k-row dataset)."""
    if not path.exists():
        raise DatasetError(f"dataset file not found: {path}",
                           hint="paths in a task file are relative to the task file; check the name")
    kind = format_of(path, fmt)
    if kind != "disk" and path.is_file() and path.stat().st_size == 0:
        raise DatasetError(f"dataset file is empty: {path}", hint="add rows")
    if kind == "jsonl":
        return _jsonl(path, keep)
    if kind == "json":
        table = _json(path)
    elif kind in ("csv", "tsv"):
        table = _delimited(path, delimiter, kind)
    elif kind in ("parquet", "arrow"):
        table = _arrow(path, kind)
    elif kind == "disk":
        table = _disk(path, split)
    else:
        raise DatasetError(f"unknown dataset.format '{kind}'",
                       hint="use jsonl, json, csv, tsv, parquet, arrow or disk")
    if keep is None:
        return table
    kept = [index for index, row in enumerate(table.rows) if keep(row)]
    return Table([table.rows[i] for i in kept], [table.places[i] for i in kept], table.source)


def read_hub(name: str, *, config: str | None, split: str) -> tuple[Table, str]:
    """A Hugging Face hub dataset and its fingerprint; served from the local cache when offline."""
    datasets = _quiet_datasets()
    try:
        loaded = datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # noqa: BLE001 - network, auth and format errors all end here
        _raise_if_disk_full(exc)
        raise DatasetError(
            f"cannot load hub dataset '{name}' (split {split}): {type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:300]}",
            hint="with no network it must be in the local Hugging Face cache (load it once online, or set "
                 "HF_DATASETS_CACHE), or export it to a file and use dataset.path") from None
    rows = [json_safe(row) for row in loaded.to_list()]
    return (Table(rows, [f"hf://{name} row {i + 1}" for i in range(len(rows))], f"hf://{name}"),
            str(getattr(loaded, "_fingerprint", name)))


def content_hash(path: Path) -> str:
    """A hash of a file's bytes, or of every file in a folder (save_to_disk)."""
    from evalkit._hashing import digest_bytes  # noqa: PLC0415

    if path.is_dir():
        parts: Iterable[Path] = sorted(p for p in path.rglob("*") if p.is_file())
        return digest_bytes(b"".join(p.relative_to(path).as_posix().encode() + p.read_bytes() for p in parts))
    return digest_bytes(path.read_bytes())
