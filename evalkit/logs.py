"""Logging for the ``evalkit`` command: levels from ``-v``/``-q``, a ``--log-file``, text or JSON lines, and
no secrets in any of it.

Every module logs through its own standard logger (``logging.getLogger(__name__)``); library users get
nothing unless they configure logging themselves. The command calls :func:`configure` once per invocation:

* stderr: warnings by default, ``-v`` info, ``-vv`` debug (request ids, batch ids, cache decisions),
  ``-vvv`` also the SDK's and the HTTP client's own debug lines; ``-q`` errors only.
* ``--log-file PATH``: appended, info and up (debug from ``-vv``), whatever ``-q`` says.
* ``--log-format json``: one JSON object per line (``ts``, ``level``, ``logger``, ``message`` and the
  record's extra fields such as ``request_id`` and ``batch_id``), on stderr and in the file.

Secrets are removed from every line after formatting (:func:`redact`): API keys (``sk-ant-…``, and the
values of ``ANTHROPIC_API_KEY`` and similar variables), ``Authorization`` / ``x-api-key`` header values and
credentials in URLs. A record with ``extra={"echoed": True}`` was already shown on the console by the
caller (a progress note, an error message) and goes to the log file only.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from rich.console import Console

LogFormat = Literal["text", "json"]
ROOT_LOGGER = "evalkit"
#: Loggers of the libraries under evalkit: shown only from -vvv (their debug lines are very chatty).
THIRD_PARTY = ("anthropic", "httpx", "httpx2", "httpcore", "httpcore2", "urllib3", "asyncio")
#: Environment variables whose values are secrets wherever they appear.
SECRET_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                    "GOOGLE_API_KEY", "EVALKIT_API_KEY")
REDACTED = "[redacted]"

_PATTERNS = (
    re.compile(r"sk-ant-[A-Za-z0-9_\-]{4,}"),
    # header or setting names followed by their value (JSON, repr, HTTP or key=value forms)
    re.compile(r"(?i)((?:x-api-key|authorization|proxy-authorization|api[_-]?key|auth[_-]?token|"
               r"secret[_-]?access[_-]?key|password)['\"]?\s*[:=]\s*\(?['\"]?(?:bearer\s+|basic\s+)?)"
               r"[^\s'\",;&)}\]]+"),
    re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-]{8,}"),
)
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s:@'\"]+(?::[^/\s@'\"]*)?@")
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime",
                                                                                   "taskName"}
_installed: list[logging.Handler] = []
_saved_root_level: list[int] = []
_console: Console | None = None


def _secret_values() -> list[str]:
    values = [os.environ.get(name, "").strip() for name in SECRET_VARIABLES]
    # Very short values (e.g. a placeholder "x") would blank out ordinary words; real keys are long.
    return sorted({value for value in values if len(value) >= 8}, key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with API keys, auth header values and URL credentials replaced by ``[redacted]``."""
    for value in _secret_values() if secrets is None else secrets:
        text = text.replace(value, REDACTED)
    text = _PATTERNS[0].sub(REDACTED, text)
    text = _PATTERNS[1].sub(lambda match: match.group(1) + REDACTED, text)
    text = _PATTERNS[2].sub(lambda match: match.group(1) + REDACTED, text)
    return _URL_CREDENTIALS.sub(lambda match: match.group(1) + REDACTED + "@", text)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_") and key != "echoed"}


class _Formatter(logging.Formatter):
    """Text lines: ``time level logger: message [key=value …]``, redacted."""

    def __init__(self, *, with_time: bool = True) -> None:
        super().__init__()
        self.with_time = with_time
        self.secrets = _secret_values()

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        extras = _extras(record)
        if extras:
            message += " [" + " ".join(f"{key}={value}" for key, value in extras.items()) + "]"
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        if self.with_time:
            stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            message = f"{stamp} {record.levelname:<7} {record.name}: {message}"
        return redact(message, self.secrets)


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, redacted."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets = _secret_values()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False), self.secrets)


class _NotEchoed(logging.Filter):
    """Drops records the caller already showed on the console (``extra={"echoed": True}``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "echoed", False)


def console_level(verbosity: int, quiet: bool) -> int:
    if quiet:
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)


def console() -> Console:
    """The stderr console shared by log lines and the progress bar (so lines print above the bar)."""
    global _console
    if _console is None:
        from rich.console import Console  # noqa: PLC0415 - keep `evalkit --help` fast

        _console = Console(stderr=True)
    return _console


def configure(*, verbosity: int = 0, quiet: bool = False, log_file: Path | None = None,
              log_format: LogFormat = "text") -> None:
    """Set up evalkit's logging for one command (replacing what a previous call installed).

    Raises :class:`OSError` when ``log_file`` cannot be opened; the CLI turns it into a usage error.
    """
    shutdown()
    level = console_level(verbosity, quiet)
    handlers: list[logging.Handler] = []
    if log_format == "json":
        stream: logging.Handler = logging.StreamHandler()  # sys.stderr at the time of each write
        stream.setFormatter(_JsonFormatter())
    else:
        from rich.logging import RichHandler  # noqa: PLC0415

        stream = RichHandler(console=console(), show_time=False, show_path=False, markup=False,
                             rich_tracebacks=False, highlighter=None)
        stream.setFormatter(_Formatter(with_time=False))
    stream.setLevel(level)
    stream.addFilter(_NotEchoed())
    handlers.append(stream)
    file_level = min(level, logging.INFO)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_file, encoding="utf-8")
        to_file.setFormatter(_JsonFormatter() if log_format == "json" else _Formatter())
        to_file.setLevel(file_level)
        handlers.append(to_file)
    root = logging.getLogger()
    for handler in handlers:
        root.addHandler(handler)
        _installed.append(handler)
    _saved_root_level.append(root.level)
    others = logging.DEBUG if verbosity >= 3 else logging.WARNING
    root.setLevel(others)  # every other library's logger inherits this
    logging.getLogger(ROOT_LOGGER).setLevel(min(handler.level for handler in handlers))
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(others)


def shutdown() -> None:
    """Remove and close what :func:`configure` installed (each command of a process starts afresh)."""
    root = logging.getLogger()
    while _installed:
        handler = _installed.pop()
        root.removeHandler(handler)
        handler.close()
    if _saved_root_level:
        root.setLevel(_saved_root_level.pop())
        for name in (ROOT_LOGGER, *THIRD_PARTY):
            logging.getLogger(name).setLevel(logging.NOTSET)
