"""Your own per-sample metrics: a Python function named in the task, or registered as an entry point.

A task names one under ``metrics:`` (docs/custom-metrics.md)::

    metrics:
      - accuracy
      - {name: routing_credit, function: "triage_metrics.py:routing_credit", threshold: 0.5}
    decision: {metric: routing_credit}

``function`` is ``file.py:func`` (a path relative to the task file) or ``package.module:func`` (imported
from ``sys.path``). A name that is neither built in nor given a function is looked up in the
``evalkit.metrics`` entry point group of the installed packages. evalkit calls the function as
``func(sample, answer, truth)`` — ``answer`` scored against ``truth``, each the task's answer value (a label
for classification, the extracted object for extraction, the text for text); ``truth`` is the reference's
answer or the gold label; ``sample`` a :class:`MetricSample` — and, if the function takes it, with
``against="reference"`` or ``"gold"``. It returns a bool or a number in [0, 1]. Invalid answers are never
passed: they score 0, as for built-in metrics. A function that raises or returns anything else stops the
run with a :class:`~evalkit.errors.MetricError` naming the task file and line, the function and the sample.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import logging
import math
import numbers
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from evalkit.datasets import Sample
from evalkit.errors import MetricError, SpecError
from evalkit.spec import MetricSpec, TaskSpec

ENTRY_POINT_GROUP = "evalkit.metrics"
#: Threshold of a custom metric that decides, unless the task gives one.
DEFAULT_CUSTOM_THRESHOLD = 0.5
Against = Literal["reference", "gold"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricSample:
    """What a custom metric sees of a sample: its id, text, gold label (None without gold) and every
    column of its dataset row (read-only)."""

    id: str
    text: str
    gold: Any
    fields: Mapping[str, Any]

    @classmethod
    def of(cls, sample: Sample) -> MetricSample:
        return cls(id=sample.id, text=sample.text, gold=sample.label,
                   fields=MappingProxyType(dict(sample.fields)))


@dataclass(frozen=True)
class CustomMetric:
    """A loaded custom metric: the function and where it was declared."""

    name: str
    function: Callable[..., Any]
    origin: str  # "triage_metrics.py:routing_credit" or "entry point evalkit.metrics:name"
    declared_at: str  # task file:line, for messages
    threshold: float
    takes_against: bool

    def score(self, answer: Any, truth: Any, sample: Sample, against: Against) -> float:
        """The function's score for one pair (``answer`` against ``truth``), checked: a bool, or a finite
        number in [0, 1]. The argument order is :data:`evalkit.scoring.samples.Scorer`'s."""
        kwargs = {"against": against} if self.takes_against else {}
        view, answer, truth = MetricSample.of(sample), _copy(answer), _copy(truth)
        try:
            value = self.function(view, answer, truth, **kwargs)
        except Exception as exc:
            raise MetricError(
                f"{self.declared_at}: metric '{self.name}' ({self.origin}) raised {type(exc).__name__}: "
                f"{exc} on sample '{sample.id}' (an answer scored against the {against}){_where(exc)}",
                hint="fix the function and re-run: the answers are in the response cache, nothing is paid "
                     "again") from None
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        if isinstance(value, numbers.Real) and math.isfinite(float(value)) and 0.0 <= float(value) <= 1.0:
            return float(value)
        raise MetricError(
            f"{self.declared_at}: metric '{self.name}' ({self.origin}) returned {value!r} on sample "
            f"'{sample.id}' (an answer scored against the {against}); a metric returns a bool or a number "
            "in [0, 1]", hint="return True/False, or a score between 0 and 1")


def _copy(value: Any) -> Any:
    """A private copy of a nested answer value, so a metric cannot change what evalkit keeps."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    frame = frames[-1] if frames else None
    return f", at {frame.filename}:{frame.lineno}" if frame is not None else ""


def _declared_at(task: TaskSpec, index: int | None) -> str:
    line = task.source.line_of(f"metrics[{index}]") if task.source and index is not None else None
    return f"{task.task_file or 'task'}" + (f":{line}" if line else "")


_modules: dict[tuple[str, int], Any] = {}


def _load_file(path: Path) -> Any:
    """Import a metric file once per content version (its mtime), under a private module name."""
    key = (str(path), path.stat().st_mtime_ns)
    if key not in _modules:
        name = "evalkit_metric_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look modules up by name
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        _modules[key] = module
    return _modules[key]


def _import_function(task: TaskSpec, index: int, entry: MetricSpec) -> tuple[Callable[..., Any], str]:
    assert entry.function is not None
    target, _, attribute = entry.function.rpartition(":")
    where = f"metrics[{index}].function"
    is_file = target.endswith(".py") or "/" in target or "\\" in target
    try:
        if is_file:
            path = (task.base_dir / target).resolve()
            if not path.is_file():
                raise task.error(where, f"metric file {target} not found (looked for {path})",
                                 hint="the path is relative to the task file, e.g. 'metrics.py:score'")
            module = _load_file(path)
        else:
            module = importlib.import_module(target)
    except SpecError:
        raise
    except Exception as exc:  # the user's module failed to import: say where
        raise task.error(where, f"cannot import {target}: {type(exc).__name__}: {exc}{_where(exc)}",
                         hint="a file path ends in .py and is relative to the task file; a module must be "
                              "importable (installed, or on PYTHONPATH)") from None
    function = getattr(module, attribute, None)
    if function is None:
        names = [name for name, value in vars(module).items() if callable(value) and not name.startswith("_")]
        close = [name for name in names if name.lower().startswith(attribute.lower()[:3])][:3]
        raise task.error(where, f"{target} has no function '{attribute}'",
                         hint=(f"did you mean {', '.join(repr(n) for n in close)}? " if close else "")
                         + f"functions there: {', '.join(sorted(names)) or 'none'}")
    return function, f"{target}:{attribute}"


def _entry_point(name: str) -> metadata.EntryPoint | None:
    for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if point.name == name:
            return point
    return None


def entry_point_names() -> list[str]:
    """Metric names registered by installed packages under the ``evalkit.metrics`` entry point group."""
    return sorted({point.name for point in metadata.entry_points(group=ENTRY_POINT_GROUP)})


def _takes_three(function: Callable[..., Any]) -> tuple[bool, bool]:
    """(callable as f(sample, answer, truth), accepts against=...)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return True, False  # a builtin or C function: trust it
    try:
        signature.bind(None, None, None)
    except TypeError:
        return False, False
    params = signature.parameters.values()
    against = any(p.name == "against" and p.kind != p.POSITIONAL_ONLY for p in params) or any(
        p.kind == p.VAR_KEYWORD for p in params)
    return True, against


def custom_metric(task: TaskSpec, name: str, builtin: set[str]) -> CustomMetric | None:
    """The custom metric called ``name`` for ``task``, or None when ``name`` is built in (in ``builtin``) or
    no metric at all. A metric file is imported once per version of its content.

    Raises :class:`SpecError` (located in the task file) when it cannot be loaded.
    """
    found = task.metric_entry(name)
    index, entry = found if found else (None, None)
    if name in builtin and (entry is None or entry.function is None):
        return None
    where = f"metrics[{index}]" if index is not None else "decision.metric"
    if entry is not None and entry.function:
        if name in builtin:
            raise task.error(f"metrics[{index}].name", f"'{name}' is a built-in metric",
                             hint="give your function another name")
        function, origin = _import_function(task, index or 0, entry)
    else:
        point = _entry_point(name)
        if point is None:
            return None  # not a metric at all: the caller says what is available
        try:
            function = point.load()
        except Exception as exc:
            raise task.error(where, f"the entry point {ENTRY_POINT_GROUP}:{name} ({point.value}) cannot be "
                             f"loaded: {type(exc).__name__}: {exc}") from None
        origin = f"entry point {ENTRY_POINT_GROUP}:{name} = {point.value}"
    if not callable(function):
        raise task.error(where, f"{origin} is not a function")
    three, against = _takes_three(function)
    if not three:
        raise task.error(where, f"{origin} cannot be called as {name}(sample, answer, truth)",
                         hint="define it as def f(sample, answer, truth): … returning a bool or a number in "
                              "[0, 1]")
    threshold = entry.threshold if entry is not None and entry.threshold is not None else (
        DEFAULT_CUSTOM_THRESHOLD)
    metric = CustomMetric(name=name, function=function, origin=origin, declared_at=_declared_at(task, index),
                          threshold=threshold, takes_against=against)
    log.debug("custom metric %s: %s (declared at %s, threshold %g)", name, origin, metric.declared_at,
              threshold)
    return metric
