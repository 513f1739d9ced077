"""How a run runs: every option validated before anything is loaded or paid for."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from evalkit.errors import UsageError
from evalkit.providers.batching import Fallback
from evalkit.providers.response_cache import CACHE_MODES, CacheMode
from evalkit.routing.analysis import RoutingOptions

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}")


@dataclass(frozen=True)
class RunOptions:
    """How a run runs; each field is the `evalkit run` option of the same name.

    ``offline``: True the in-process simulator, False the API, None the API when ``ANTHROPIC_API_KEY`` is
    set. ``mode``: Message Batches or real time. ``max_wait_s``: stop waiting on batches (resumably).
    ``fallback``: finish items that keep failing in batches in real time. ``sequential``: stop early at the
    group-sequential looks. ``routing``: the router threshold's objective. ``write_report``: write the run
    folder. ``max_cost``: the budget guard in USD. ``sample_size``, ``cache_mode``, ``concurrency``,
    ``run_id``, ``reports_dir``: as on the command line. ``detach``: submit the batches and return.
    """

    offline: bool | None = None  # None: simulator unless ANTHROPIC_API_KEY is set
    mode: Literal["batch", "realtime"] = "batch"
    max_wait_s: float | None = None  # batch mode: stop waiting (resumably) after this long
    fallback: Fallback = "none"  # batch mode: finish items that keep failing in real time
    sequential: bool = False  # group-sequential looks: stop early when the decision is already clear
    routing: RoutingOptions = field(default_factory=RoutingOptions)
    write_report: bool = True
    max_cost: float | None = None  # budget guard (USD); also the task's max_cost_usd
    sample_size: int | None = None
    cache_mode: CacheMode = "use"
    concurrency: int | None = None
    run_id: str | None = None
    reports_dir: Path | None = None
    detach: bool = False  # batch mode: submit and return; a later run collects (see `evalkit status`)

    def validate(self) -> RunOptions:
        """Raise :class:`UsageError` for any option that would fail later — before the first request."""
        if self.mode not in ("batch", "realtime"):
            raise UsageError(f"--mode must be batch or realtime, got {self.mode!r}")
        if self.fallback not in ("none", "realtime"):
            raise UsageError(f"--fallback must be none or realtime, got {self.fallback!r}")
        if self.cache_mode not in CACHE_MODES:
            raise UsageError(f"--cache must be one of {', '.join(CACHE_MODES)}, got {self.cache_mode!r}")
        if self.sample_size is not None and self.sample_size < 1:
            raise UsageError(f"--sample-size must be at least 1, got {self.sample_size}")
        if self.concurrency is not None and not 1 <= self.concurrency <= 256:
            raise UsageError(f"--concurrency must be between 1 and 256, got {self.concurrency}")
        if self.max_wait_s is not None and self.max_wait_s < 0:
            raise UsageError(f"--max-wait must be at least 0 seconds, got {self.max_wait_s}")
        if self.detach and self.mode != "batch":
            raise UsageError("--detach needs --mode batch: a real-time run has nothing to come back for")
        if self.max_cost is not None and self.max_cost < 0:
            raise UsageError(f"--max-cost must be at least 0, got {self.max_cost}")
        if self.run_id is not None and not RUN_ID.fullmatch(self.run_id):
            raise UsageError(f"--run-id {self.run_id!r} must be letters, digits, '.', '_' or '-' "
                             "(starting with a letter or digit, at most 81 characters)")
        return self
