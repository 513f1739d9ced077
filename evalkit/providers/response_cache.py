"""The response cache: every paid answer is stored, so nothing is ever paid for twice.

Backed by diskcache (SQLite, safe across processes) with JSON values, not pickles. The key is a sha256
over canonical JSON of the cache schema version, the endpoint identity (real API vs simulator never
mix), the exact request body, and the replicate index. Nothing secret is part of the key or the value:
API keys live only in the HTTP client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import diskcache

from evalkit._hashing import digest
from evalkit.errors import CacheError
from evalkit.prompts.render import ModelRequest
from evalkit.providers.base import ModelResponse

#: Bump when the stored value format changes; old entries then simply miss.
CACHE_SCHEMA = 1

CacheMode = Literal["use", "read-only", "refresh", "off"]
CACHE_MODES: tuple[CacheMode, ...] = ("use", "read-only", "refresh", "off")


def request_key(endpoint: str, request: ModelRequest) -> str:
    # Memoised on the request: hashing the canonical JSON of a full request body is the main cost of a
    # fully cached tuning session, and every stage asks for the same keys.
    memo: dict[str, str] = request.__dict__.setdefault("_keys", {})
    if endpoint not in memo:
        memo[endpoint] = digest({"schema": CACHE_SCHEMA, "endpoint": endpoint, "params": request.params,
                                 "replicate": request.replicate})
    return memo[endpoint]


class ResponseCache:
    """Stores :class:`ModelResponse` values by request key. Errors are never cached."""

    def __init__(self, directory: Path, mode: CacheMode = "use") -> None:
        if mode not in CACHE_MODES:
            raise CacheError(f"unknown cache mode '{mode}'", hint=f"use one of {', '.join(CACHE_MODES)}")
        self.directory = directory
        self.mode: CacheMode = mode
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._store = diskcache.Cache(str(directory / "responses"), disk=diskcache.JSONDisk,
                                          disk_compress_level=6, size_limit=2**34)
        except OSError as exc:
            raise CacheError(f"cannot open the response cache at {directory}: {exc.strerror}",
                             hint="set cache_dir in evalkit.toml or EVALKIT_CACHE_DIR to a writable "
                                  "folder") from None

    @property
    def readable(self) -> bool:
        return self.mode in ("use", "read-only")

    @property
    def writable(self) -> bool:
        return self.mode in ("use", "refresh")

    def get(self, endpoint: str, request: ModelRequest) -> ModelResponse | None:
        if not self.readable:
            return None
        value = self._store.get(request_key(endpoint, request))
        return ModelResponse.from_cache(value) if value is not None else None

    def put(self, endpoint: str, request: ModelRequest, response: ModelResponse) -> None:
        if self.writable:
            self._store.set(request_key(endpoint, request), response.to_cache())

    def put_key(self, key: str, response: ModelResponse) -> None:
        """Store under a key computed earlier (batch results arrive with only their custom_id)."""
        if self.writable:
            self._store.set(key, response.to_cache())

    def __len__(self) -> int:
        return len(self._store)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
