"""Progress reporting for long work, decoupled from the terminal.

Library code reports through :class:`Progress`; the CLI passes a rich-based implementation, tests and
library users get :class:`NullProgress` unless they pass their own.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.progress import TaskID


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


class RichProgress:
    """A progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self) -> None:
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

        self._console = Console(stderr=True)
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

    def start(self, label: str, total: int) -> None:
        self._label, self._total, self._done = label, total, 0
        self._start_label = label
        if self._interactive:
            self._progress.start()
            self._task = self._progress.add_task(label, total=total)
        else:
            print(f"{label}: 0/{total}", file=sys.stderr, flush=True)

    def advance(self, n: int = 1) -> None:
        self._done += n
        if self._task is not None:
            self._progress.advance(self._task, n)
        elif self._total and self._done in {self._total} | {self._total * k // 4 for k in (1, 2, 3)}:
            print(f"{self._start_label}: {self._done}/{self._total}", file=sys.stderr, flush=True)

    def update(self, label: str) -> None:
        self._label = label
        if self._task is not None:
            self._progress.update(self._task, description=label)
        else:
            print(label, file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self._task is not None:
            self._progress.stop()
            self._task = None

    def note(self, message: str) -> None:
        self._console.print(message, highlight=False, soft_wrap=True)
