"""Progress reporting for long work, decoupled from the terminal.

Library code reports through :class:`Progress`; the CLI passes a rich-based implementation (or, with
``-q``, :class:`LogProgress`), tests and library users get :class:`NullProgress` unless they pass their own.
Notes and status changes also go to the ``evalkit.progress`` logger, so a ``--log-file`` tells the story of
a run; progress lines show the time left (ETA) from the rate so far.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

log = logging.getLogger(__name__)


class Progress(Protocol):
    def start(self, label: str, total: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def update(self, label: str) -> None: ...
    def stop(self) -> None: ...
    def note(self, message: str) -> None: ...


class NullProgress:
    def start(self, label: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def update(self, label: str) -> None:
        pass

    def stop(self) -> None:
        pass

    def note(self, message: str) -> None:
        pass


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def eta(done: int, total: int, elapsed: float) -> float | None:
    """Seconds left at the rate so far (None before anything is done, or when nothing is left)."""
    if done <= 0 or total <= done or elapsed <= 0:
        return None
    return elapsed * (total - done) / done


class LogProgress(NullProgress):
    """No output of its own: notes and status changes go to the log only (``-q`` with ``--log-file``)."""

    def start(self, label: str, total: int) -> None:
        log.debug("%s: started, %d to do", label, total)

    def update(self, label: str) -> None:
        log.info(label)

    def note(self, message: str) -> None:
        log.info(message)


class RichProgress:
    """A progress bar on stderr (plain lines when stderr is not a terminal), with an ETA either way."""

    def __init__(self, console: Console | None = None) -> None:
        from rich.console import Console  # noqa: PLC0415 - keep `evalkit --help` fast
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import (
            Progress as _Progress,
        )

        self._console = console or Console(stderr=True)
        self._interactive = self._console.is_terminal
        self._progress = _Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn(), console=self._console, transient=False,
        )
        self._task: TaskID | None = None
        self._label = ""
        self._total = 0
        self._done = 0
        self._start_label = ""
        self._started = time.monotonic()

    def line(self) -> str:
        """The plain progress line: ``label: done/total · elapsed · eta``."""
        elapsed = time.monotonic() - self._started
        text = f"{self._start_label}: {self._done}/{self._total}"
        if self._done and self._done >= self._total:
            return f"{text} · done in {duration(elapsed)}"
        left = eta(self._done, self._total, elapsed)
        return text + (f" · {duration(elapsed)} elapsed · eta {duration(left)}" if left is not None else "")

    def start(self, label: str, total: int) -> None:
        self._label, self._total, self._done = label, total, 0
        self._start_label = label
        self._started = time.monotonic()
        log.debug("%s: started, %d to do", label, total)
        if self._interactive:
            self._progress.start()
            self._task = self._progress.add_task(label, total=total)
        else:
            print(self.line(), file=sys.stderr, flush=True)

    def advance(self, n: int = 1) -> None:
        self._done += n
        if self._task is not None:
            self._progress.advance(self._task, n)
        elif self._total and self._done in {self._total} | {self._total * k // 4 for k in (1, 2, 3)}:
            line = self.line()
            print(line, file=sys.stderr, flush=True)
            log.info(line, extra={"echoed": True})

    def update(self, label: str) -> None:
        self._label = label
        log.info(label, extra={"echoed": True})
        if self._task is not None:
            self._progress.update(self._task, description=label)
        else:
            print(label, file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self._task is not None:
            self._progress.stop()
            self._task = None

    def note(self, message: str) -> None:
        log.info(message, extra={"echoed": True})
        self._console.print(message, highlight=False, soft_wrap=True)
