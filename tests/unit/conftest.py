"""Fixtures of the fast tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from evalkit.providers.batching import BatchLedger
from evalkit.providers.response_cache import ResponseCache


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[ResponseCache]:
    """An empty response cache of the test's own."""
    with ResponseCache(tmp_path / "cache") as opened:
        yield opened


@pytest.fixture
def ledger(tmp_path: Path) -> BatchLedger:
    """An empty batch ledger of the test's own."""
    return BatchLedger(tmp_path / "batches")
