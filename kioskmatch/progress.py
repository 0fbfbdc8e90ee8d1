"""Progress of long CLI work: a rich bar on a terminal, elsewhere (logs, CI) a log line every
few seconds, so piped runs still show they are alive without drowning the log.

``rich`` is optional here: an older kiosk image without it gets the log lines only.
"""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["CliProgress"]


class CliProgress:
    """``with CliProgress(total, "valued", logger) as p: p.update(done, note="...")``."""

    def __init__(
        self, total: int, label: str, logger: logging.Logger, *, every_s: float = 5.0
    ) -> None:
        self._total = total
        self._label = label
        self._logger = logger
        self._every_s = every_s
        self._last_line = time.monotonic()
        self._state: tuple[int, str] = (0, "")
        self._printed: tuple[int, str] = (0, "")
        self._bar: Any = None
        self._terminal = False
        try:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
        except ImportError:
            return
        console = Console(stderr=True)
        self._terminal = console.is_terminal
        if self._terminal:
            self._bar = Progress(
                TextColumn(label),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[note]}"),
                console=console,
            )
            self._task = self._bar.add_task(label, total=total, note="")

    def __enter__(self) -> CliProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self._state != self._printed:
            self._line()

    def update(self, done: int, *, note: str = "") -> None:
        self._state = (done, note)
        if self._bar is not None:
            self._bar.update(self._task, completed=done, note=note)
        elif time.monotonic() - self._last_line >= self._every_s:
            self._line()

    def _line(self) -> None:
        done, note = self._state
        self._printed = self._state
        self._last_line = time.monotonic()
        self._logger.info("%d/%d %s%s", done, self._total, self._label, f" {note}" if note else "")
