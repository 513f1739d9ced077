"""How many samples a task's decision needs: exact power at the margin the run applies, for a fixed or a
group-sequential design, and whether the dataset has that many rows."""

from __future__ import annotations

import math
from dataclasses import dataclass

from evalkit.config import Settings
from evalkit.datasets import load_samples
from evalkit.errors import UsageError
from evalkit.spec import TaskSpec
from evalkit.stats.decision import plan_sample_size
from evalkit.stats.sequential import looks_every, sequential_inflation


@dataclass(frozen=True)
class PlanResult:
    task: TaskSpec
    mode: str  # "gold" | "reference"
    margin: float  # the absolute margin planned for (a relative margin times the reference accuracy)
    n: int | None  # samples for the fixed design; with ``sequential``, N_max of the sequential design
    side: str | None
    why: str | None
    rows_available: int
    inflation: float | None = None  # sequential: N_max over the fixed design's N

    @property
    def reachable(self) -> bool:
        return self.n is not None and self.n <= self.rows_available


def plan(task: TaskSpec, settings: Settings, *, expected_gap: float, discordance: float = 0.02,
         power: float = 0.8, reference_accuracy: float | None = None, sequential: bool = False) -> PlanResult:
    """How many samples the task's decision needs at an expected quality loss (exact power), for the
    task's margin as the run applies it and its look schedule with ``sequential``."""
    if not 0 <= expected_gap < 1 or not 0 < power < 1:
        raise UsageError("--expected-gap must be in [0, 1) and --power in (0, 1)")
    mode = "gold" if task.dataset.label_column else "reference"
    margin = task.decision.margin
    if task.decision.margin_type == "relative" and mode == "gold":
        if reference_accuracy is None or not 0 < reference_accuracy <= 1:
            raise UsageError("the task's margin is relative to the reference's accuracy: give the accuracy "
                             "you "
                             "expect with --reference-accuracy (e.g. 0.8)",
                             hint="a 5% relative margin at 80% accuracy is a 4-point margin, which needs "
                                  "more "
                                  ""
                                  "samples")
        margin = margin * reference_accuracy
    result = plan_sample_size(mode=mode, expected_gap=expected_gap, margin=margin, alpha=task.decision.alpha,
                              power=power, discordance=discordance)
    rows = load_samples(task, cache_dir=settings.cache_dir, offline=True, size=1).rows_available
    n, inflation = result["n"], None
    if sequential and n is not None:
        n_max = n
        for _ in range(3):  # the looks depend on N_max: iterate to a fixed point
            fractions = [k / n_max for k in looks_every(n_max, task.decision.sequential_every)]
            inflation = sequential_inflation(fractions, task.decision.alpha, power)
            n_max = math.ceil(n * inflation)
        n = n_max
    return PlanResult(task=task, mode=mode, margin=margin, n=n, side=result.get("side"),
                      why=result.get("why"), rows_available=rows, inflation=inflation)
