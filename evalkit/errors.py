"""The evalkit error tree.

Every error a user can act on is an :class:`EvalkitError`; the CLI prints its message (no traceback)
and exits with its ``exit_code``.

    EvalkitError
    ├── UsageError            bad command-line use                         (exit 2)
    ├── ConfigError           evalkit.toml / settings / pricing problems   (exit 2)
    │   └── PricingError      a model has no price (never a silent $0)
    ├── SpecError             task YAML invalid: file, line, key path, fix (exit 2)
    ├── DatasetError          dataset missing, empty, bad columns/labels   (exit 2)
    ├── TemplateError         prompt template does not compile or render   (exit 2)
    ├── CacheError            response cache unusable / entry missing      (exit 2)
    │   └── StateError        damaged local state (cache entry, cache.db, batch ledger), or a disk
    │                         that is full or read-only: names the file and the fix (exit 2)
    │   └── StoreError        the shared store (PostgreSQL) cannot be reached, read or written, or its
    │                         schema is not this evalkit's: names the store (never its password) (exit 2)
    ├── BatchPendingError     batches still processing at --max-wait; re-run to resume (exit 5)
    ├── BudgetError           the budget guard refused to start or stopped the run     (exit 6)
    ├── PortInUseError        `evalkit sim serve`: the port is taken by another process (exit 8)
    └── ProviderError         the model API failed at run time             (exit 4)
        ├── AuthError         missing or rejected API key
        └── ModelNotFoundError  the API does not know the model id (404)

Messages say what was expected, what was found, and how to fix it. They never contain secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class EvalkitError(Exception):
    """Base class: an error the user can fix or must know about."""

    exit_code = 2

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

    exit_code = 5

    def __init__(self, message: str, *, batch_ids: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.batch_ids = batch_ids


class BudgetError(EvalkitError):
    """The run would cost (or has cost) more than --max-cost / max_cost_usd. Nothing beyond it was spent."""

    exit_code = 6


class PortInUseError(EvalkitError):
    """``evalkit sim serve`` cannot listen: another process holds the port."""

    exit_code = 8


class CacheError(EvalkitError):
    """The response cache cannot serve what was asked (e.g. a read-only session misses)."""


class StateError(CacheError):
    """evalkit's own state on disk is damaged or cannot be written. Never answered by paying again: the run
    stops and says which file, and how to fix it (usually ``evalkit cache verify`` / ``repair``)."""

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

    exit_code = 4

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


class ModelNotFoundError(ProviderError):
    """The API answered 404 for the model id."""
