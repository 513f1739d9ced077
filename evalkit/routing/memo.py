"""Remembered results of deterministic computations, so a cached re-run or ``tune`` does not redo them.

The routing analysis' calibration report fits isotonic and Platt recalibrators under stratified folds
(:mod:`evalkit.routing.fits`); on a re-run from cached answers the inputs — and so the report — are the
same as the last time. Each result is stored as one JSON file named by the SHA-256 of everything it
depends on: the inputs' exact bytes, the options, the versions of SciPy and numpy, and the source of the
modules that compute it (a code change recomputes). JSON keeps floats exactly (``repr`` round trips), so
a remembered report is the same object as a computed one.

Stored beside the response cache (``<cache_dir>/derived/``), never in it: nothing here is a paid
answer. A missing, unreadable or corrupt entry is recomputed and rewritten; a folder that cannot be
written only costs the recomputation next time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from evalkit._io import private_dir

__all__ = ["MEMO_SCHEMA", "digest", "remembered"]

MEMO_SCHEMA = 1
#: The libraries whose numbers a remembered result depends on.
LIBRARIES = ("scipy", "numpy")
log = logging.getLogger(__name__)
T = TypeVar("T")


@cache
def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


@cache
def _source_digest(module: str) -> str:
    path = getattr(sys.modules[module], "__file__", None)
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else "unknown"


def _canonical(value: Any) -> Any:
    """A JSON-ready, exact description of an input: arrays by dtype, shape and bytes."""
    if isinstance(value, np.ndarray):
        contiguous = np.ascontiguousarray(value)
        return {"dtype": contiguous.dtype.str, "shape": list(contiguous.shape),
                "sha256": hashlib.sha256(contiguous.tobytes()).hexdigest()}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, float):
        return {"float": value.hex()}
    if value is None or isinstance(value, bool | int | str):
        return value
    raise TypeError(f"cannot key a remembered result by a {type(value).__name__}")


def digest(kind: str, module: str | tuple[str, ...], inputs: dict[str, Any]) -> str:
    """The key of a result of ``kind`` computed by ``module`` (or modules) from ``inputs`` with today's
    libraries."""
    modules = (module,) if isinstance(module, str) else module
    key = {"schema": MEMO_SCHEMA, "kind": kind, "code": [_source_digest(name) for name in modules],
           "libraries": _versions(), "inputs": _canonical(inputs)}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def remembered(folder: Path | None, kind: str, module: str | tuple[str, ...], inputs: dict[str, Any],
               compute: Callable[[], T]) -> T:
    """``compute()``, or the result stored for the same ``inputs`` (``folder`` None: always computed).

    ``compute`` must return plain JSON values (dicts, lists, str, int, float incl. NaN, bool, None)."""
    if folder is None:
        return compute()
    key = digest(kind, module, inputs)
    path = folder / f"{kind}-{key}.json"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(stored, dict) and stored.get("key") == key and "value" in stored:
            return stored["value"]
        log.info("remembered %s at %s is not one of ours: recomputing", kind, path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as error:  # unreadable or corrupt: recompute, rewrite
        log.info("remembered %s at %s unreadable (%s): recomputing", kind, path, error)
    value = compute()
    _store(path, {"key": key, "kind": kind, "value": value})
    return value


def _store(path: Path, content: dict[str, Any]) -> None:
    try:
        private_dir(path.parent)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(content, out)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except (OSError, TypeError, ValueError) as error:  # not writable: recomputed next time, never fatal
        log.info("could not remember %s at %s: %s", content.get("kind"), path, error)
