"""Atomic file writes: a crash leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: One permission policy for everything evalkit keeps (cache, batch ledger, simulator state, reports):
#: owner-only. Folders 0700, files 0600. Other users of the machine can read none of it.
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (one owned by another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def private_dir(path: Path) -> Path:
    """Create ``path`` (and any missing parents) owner-only; make an existing one of ours owner-only."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            pass
    if path.is_dir() and path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
        path.chmod(PRIVATE_DIR)
    return path


def private_file(path: Path) -> None:
    if path.is_file() and path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
        path.chmod(PRIVATE_FILE)


#: The most text encoded at once by :func:`atomic_write_lines`.
_SLICE = 1 << 16


def atomic_write_text(path: Path, text: str, *, durable: bool = True) -> None:
    """Write ``path`` (owner-only, 0600: ``mkstemp``'s mode) so that it is either old or new, never torn.

    ``durable=False`` skips the fsync: the file still survives the process being killed (the kernel holds
    it), only not the machine losing power — for marks written before every request, where an fsync is a
    blocking disk flush on the event loop (~1,000 per realtime run)."""
    atomic_write_lines(path, (text,), durable=durable)


def atomic_write_lines(path: Path, chunks: Iterable[str], *, durable: bool = True) -> None:
    """:func:`atomic_write_text` for text produced piece by piece (e.g. one JSON line per sample): each
    piece is written as it comes, so the whole file never has to be one string in memory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            for chunk in chunks:
                # In slices: the text layer encodes what it is given at once, and a multi-megabyte piece
                # (the report's embedded data) would be a second copy of itself in memory.
                for start in range(0, len(chunk), _SLICE):
                    handle.write(chunk[start:start + _SLICE])
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def atomic_write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    atomic_write_lines(path, (json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n" for row in rows))
