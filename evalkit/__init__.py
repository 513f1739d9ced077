"""evalkit: can this task move from the big model to the small one, and with what routing threshold?

The public API (also what the ``evalkit`` command calls)::

    import evalkit
    result = evalkit.run_task("tasks/triage.yaml", evalkit.RunOptions(offline=True, sample_size=100))
    result.record.decision.verdict        # "GO" | "NO-GO" | "INCONCLUSIVE" | …
    result.record.metrics.accuracy        # typed: see evalkit.RunRecord

Names are imported on first use, so ``import evalkit`` (and ``evalkit --help``) stays fast.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from evalkit._version import __version__

# A library logs through standard loggers and shows nothing until its user configures logging.
logging.getLogger("evalkit").addHandler(logging.NullHandler())

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    # entry points
    "run_task": "evalkit.api",
    "validate_task": "evalkit.api",
    "lint_task": "evalkit.api",
    "estimate_task": "evalkit.api",
    "plan_task": "evalkit.api",
    "tune_task": "evalkit.api",
    "gate_task": "evalkit.api",
    "check_gate": "evalkit.api",
    "save_baseline": "evalkit.api",
    "render_report": "evalkit.api",
    "load_task": "evalkit.spec",
    "load_settings": "evalkit.config",
    "read_record": "evalkit.record.files",
    "read_rows": "evalkit.record.files",
    # options and results
    "RunOptions": "evalkit.run.options",
    "RoutingOptions": "evalkit.routing.analysis",
    "GateOptions": "evalkit.gate",
    "RunResult": "evalkit.run.pipeline",
    "TuneResult": "evalkit.api",
    "GateResult": "evalkit.api",
    "PlanResult": "evalkit.run.plan",
    "RunRecord": "evalkit.record.model",
    "SampleRow": "evalkit.record.rows",
    "Decision": "evalkit.stats.decision",
    "TaskSpec": "evalkit.spec",
    "Settings": "evalkit.config",
    "MetricSample": "evalkit.scoring.custom",
    # live routing
    "Router": "evalkit.routing.router",
    "RoutedAnswer": "evalkit.routing.router",
    # errors
    "EvalkitError": "evalkit.errors",
    "UsageError": "evalkit.errors",
    "ConfigError": "evalkit.errors",
    "SpecError": "evalkit.errors",
    "DatasetError": "evalkit.errors",
    "TemplateError": "evalkit.errors",
    "ProviderError": "evalkit.errors",
    "AuthError": "evalkit.errors",
    "CacheError": "evalkit.errors",
    "BudgetError": "evalkit.errors",
    "BatchPendingError": "evalkit.errors",
    "MetricError": "evalkit.errors",
}

__all__ = [
    "__version__",
    "AuthError",
    "BatchPendingError",
    "BudgetError",
    "CacheError",
    "ConfigError",
    "DatasetError",
    "Decision",
    "EvalkitError",
    "GateOptions",
    "GateResult",
    "MetricError",
    "MetricSample",
    "PlanResult",
    "ProviderError",
    "RoutedAnswer",
    "Router",
    "RoutingOptions",
    "RunOptions",
    "RunRecord",
    "RunResult",
    "SampleRow",
    "Settings",
    "SpecError",
    "TaskSpec",
    "TemplateError",
    "TuneResult",
    "UsageError",
    "check_gate",
    "estimate_task",
    "gate_task",
    "lint_task",
    "load_settings",
    "load_task",
    "plan_task",
    "read_record",
    "read_rows",
    "render_report",
    "run_task",
    "save_baseline",
    "tune_task",
    "validate_task",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from evalkit.api import (
        GateResult,
        TuneResult,
        check_gate,
        estimate_task,
        gate_task,
        lint_task,
        plan_task,
        render_report,
        run_task,
        save_baseline,
        tune_task,
        validate_task,
    )
    from evalkit.config import Settings, load_settings
    from evalkit.errors import (
        AuthError,
        BatchPendingError,
        BudgetError,
        CacheError,
        ConfigError,
        DatasetError,
        EvalkitError,
        MetricError,
        ProviderError,
        SpecError,
        TemplateError,
        UsageError,
    )
    from evalkit.gate import GateOptions
    from evalkit.record.files import read_record, read_rows
    from evalkit.record.model import RunRecord
    from evalkit.record.rows import SampleRow
    from evalkit.routing.analysis import RoutingOptions
    from evalkit.routing.router import RoutedAnswer, Router
    from evalkit.run.options import RunOptions
    from evalkit.run.pipeline import RunResult
    from evalkit.run.plan import PlanResult
    from evalkit.scoring.custom import MetricSample
    from evalkit.spec import TaskSpec, load_task
    from evalkit.stats.decision import Decision
