"""The evalkit error tree, and every exit code the ``evalkit`` command uses (:data:`EXIT_CODES`).

Every error a user can act on is an :class:`EvalkitError`; the CLI prints its message (no traceback)
and exits with its ``exit_code``.

    EvalkitError
    ├── UsageError            bad command-line use                         (exit 2)
    ├── ConfigError           evalkit.toml / settings / pricing problems   (exit 2)
    │   └── PricingError      a model has no price (never a silent $0)
    ├── SpecError             task YAML invalid: file, line, key path, fix (exit 2)
    ├── DatasetError          dataset missing, empty, bad columns/labels   (exit 2)
    ├── TemplateError         prompt template does not compile or render   (exit 2)
    ├── MetricError           a custom metric function failed on a sample  (exit 10)
    ├── CacheError            response cache cannot serve (read-only miss) (exit 9)
    │   └── StateError        damaged local state (cache entry, cache.db, batch ledger), or a disk
    │                         that is full or read-only: names the file and the fix (exit 2)
    │   └── StoreError        the shared store (PostgreSQL) cannot be reached, read or written, or its
    │                         schema is not this evalkit's: names the store (never its password) (exit 2)
    ├── BatchPendingError     batches still processing at --max-wait; re-run to resume (exit 5)
    ├── BudgetError           the budget guard refused to start or stopped the run      (exit 6)
    ├── PortInUseError        `evalkit sim serve`: the port is taken by another process (exit 11)
    └── ProviderError         the model API failed at run time             (exit 4)
        ├── AuthError         missing or rejected API key                  (exit 8)
        └── ModelNotFoundError  the API does not know the model id (404)

Messages say what was expected, what was found, and how to fix it. They never contain secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# -- exit codes: one per failure class, the one table (docs/ci.md shows the same; a test keeps them equal) --
EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_USAGE = 2
EXIT_INCONCLUSIVE = 3
EXIT_API = 4
EXIT_BATCH_PENDING = 5
EXIT_BUDGET = 6
EXIT_INVALID_RUN = 7
EXIT_AUTH = 8
EXIT_CACHE = 9
EXIT_METRIC = 10
EXIT_PORT_IN_USE = 11
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

#: Exit code -> what it means, for every code ``evalkit`` can exit with.
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success; the gate passed",
    EXIT_REGRESSION: "regression or NO-GO (gate, `run --gate`); `lint` found problems; `plan` found no "
                     "sample size; `prices check` found the price table older than --max-age",
    EXIT_USAGE: "usage or configuration error: bad option, task file, dataset, template, evalkit.toml, a "
                "model without a price, a missing baseline; damaged local state (cache.db, a cache entry, a "
                "batch-ledger record) or a full disk, with the file and `evalkit cache verify|repair`",
    EXIT_INCONCLUSIVE: "INCONCLUSIVE decision (gate; `--inconclusive pass` maps it to 0, `--inconclusive "
                       "fail` to 1)",
    EXIT_API: "the model API failed (server errors after retries, timeouts, an unknown model id, …)",
    EXIT_BATCH_PENDING: "a batch is still processing at `--max-wait`; re-run to resume, nothing is "
                        "resubmitted",
    EXIT_BUDGET: "the budget guard (`--max-cost`, `max_cost_usd`) refused to start or stopped the run; "
                 "re-run resumes",
    EXIT_INVALID_RUN: "INVALID-RUN: the evidence cannot support any verdict (`run`, `validate`, `gate`); the "
                      "report lists the reasons and fixes",
    EXIT_AUTH: "credentials missing or rejected (ANTHROPIC_API_KEY unset with --online, 401, 403)",
    EXIT_CACHE: "the response cache cannot be opened, or cannot serve what was asked: a `--cache read-only` "
                "run or `tune` would have had to call the API",
    EXIT_METRIC: "a custom metric function raised or returned something other than a bool or a number "
                 "in [0, 1]",
    EXIT_PORT_IN_USE: "`evalkit sim serve`: the port is already in use by another process",
    EXIT_INTERNAL: "internal error: a bug in evalkit (the traceback is printed; please report it)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); every answer received so far is cached",
}


class EvalkitError(Exception):
    """Base class: an error the user can fix or must know about."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(EvalkitError):
    """The command line asked for something inconsistent."""


class ConfigError(EvalkitError):
    """evalkit.toml or environment settings are invalid."""


class PricingError(ConfigError):
    """A model used by the run has no entry in the pricing table."""


@dataclass(frozen=True)
class SpecIssue:
    """One problem found in a task file."""

    path: str  # dotted key path, e.g. "models.candidate"
    message: str
    line: int | None = None
    hint: str | None = None

    def render(self, file: Path | str | None) -> str:
        where = f"{file}" if file else "<task>"
        if self.line is not None:
            where += f":{self.line}"
        text = f"{where}: {self.path or '<top level>'}: {self.message}"
        if self.hint:
            text += f"\n    fix: {self.hint}"
        return text


class SpecError(EvalkitError):
    """The task file is not a valid evalkit task. Carries every issue found, each located."""

    def __init__(self, file: Path | str | None, issues: list[SpecIssue]) -> None:
        self.file = file
        self.issues = issues
        count = len(issues)
        header = f"{file or 'task'}: {count} problem{'s' if count != 1 else ''} in the task file"
        body = "\n".join("  " + issue.render(file) for issue in issues)
        super().__init__(f"{header}\n{body}")

    def __str__(self) -> str:
        return self.message


class DatasetError(EvalkitError):
    """The dataset cannot be loaded or does not match the task."""


class TemplateError(EvalkitError):
    """A prompt template failed to compile or render."""


class BatchPendingError(EvalkitError):
    """Batches are still processing when the run had to stop waiting (``--max-wait``). Resumable."""

    exit_code = EXIT_BATCH_PENDING

    def __init__(self, message: str, *, batch_ids: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.batch_ids = batch_ids


class BudgetError(EvalkitError):
    """The run would cost (or has cost) more than --max-cost / max_cost_usd. Nothing beyond it was spent."""

    exit_code = EXIT_BUDGET


class PortInUseError(EvalkitError):
    """``evalkit sim serve`` cannot listen: another process holds the port."""

    exit_code = EXIT_PORT_IN_USE


class CacheError(EvalkitError):
    """The response cache cannot serve what was asked (e.g. a read-only session misses)."""

    exit_code = EXIT_CACHE


class MetricError(EvalkitError):
    """A custom metric function (``metrics: [{name, function}]`` in the task) raised, or returned something
    that is neither a bool nor a number in [0, 1]. Names the task file and line, the function and the
    sample id."""

    exit_code = EXIT_METRIC


class StateError(CacheError):
    """evalkit's own state on disk is damaged or cannot be written. Never answered by paying again: the run
    stops and says which file, and how to fix it (usually ``evalkit cache verify`` / ``repair``)."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, path: Path | str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path


class StoreError(StateError):
    """The shared store (``store = "postgresql://…"``) cannot be used. The message names the store by its
    redacted URL: a password never appears in it."""


class ProviderError(EvalkitError):
    """The model API failed. ``status`` is the HTTP status when there was one.

    ``maybe_billed``: the request may have reached the model and been billed although no answer came back
    (a timeout, a connection lost after the request was sent, a gateway's 502/504); sending it again may
    pay twice. ``retry_after_s``: how long the server asked to wait before retrying.
    """

    exit_code = EXIT_API

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
        hint: str | None = None,
        retryable: bool = False,
        maybe_billed: bool = False,
        retry_after_s: float | None = None,
        timed_out: bool = False,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.error_type = error_type
        self.request_id = request_id
        self.retryable = retryable
        self.maybe_billed = maybe_billed
        self.retry_after_s = retry_after_s
        self.timed_out = timed_out  # no answer within the timeout (the server may still be working on it)


class AuthError(ProviderError):
    """No usable credentials, or the API rejected them."""

    exit_code = EXIT_AUTH


class ModelNotFoundError(ProviderError):
    """The API answered 404 for the model id."""
