"""Progress of long CLI work: a rich bar on a terminal, elsewhere (logs, CI) a log line every
few seconds, so piped runs still show they are alive without drowning the log."""

from __future__ import annotations

import logging
import time

__all__ = ["CliProgress"]


class CliProgress:
    """``with CliProgress(total, "valued", logger) as p: p.update(done, note="...")``."""

    def __init__(
        self, total: int, label: str, logger: logging.Logger, *, every_s: float = 5.0
    ) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._total = total
        self._label = label
        self._logger = logger
        self._every_s = every_s
        self._last_line = time.monotonic()
        self._console = Console(stderr=True)
        self._bar = Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            console=self._console,
            disable=not self._console.is_terminal,
        )
        self._task = self._bar.add_task(label, total=total, note="")
        self._state: tuple[int, str] = (0, "")
        self._printed: tuple[int, str] = (0, "")

    def __enter__(self) -> CliProgress:
        self._bar.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._bar.stop()
        if not self._console.is_terminal and self._state != self._printed:
            self._line()

    def update(self, done: int, *, note: str = "") -> None:
        self._state = (done, note)
        self._bar.update(self._task, completed=done, note=note)
        if not self._console.is_terminal and time.monotonic() - self._last_line >= self._every_s:
            self._line()

    def _line(self) -> None:
        done, note = self._state
        self._printed = self._state
        self._last_line = time.monotonic()
        self._logger.info("%d/%d %s%s", done, self._total, self._label, f" {note}" if note else "")
