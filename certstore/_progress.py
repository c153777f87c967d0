"""Progress reporting for long runs: a rich bar on a terminal, periodic lines otherwise.

The line format is what the cutover runbook greps for (``grep BACKFILL``)::

    BACKFILL progress 10/87 (11.5%) 12.3 obj/s ETA 2m
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

logger = logging.getLogger(__name__)


class Progress(Protocol):
    """What a long run reports to."""

    def start(self, total: int) -> None:
        """The run expects ``total`` items."""

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        """``items`` more are done."""

    def close(self) -> None:
        """The run ended (print a last line / remove the bar)."""


class NullProgress:
    """Reports nothing."""

    def start(self, total: int) -> None:
        pass

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        pass

    def close(self) -> None:
        pass


def percent_text(part: int, whole: int) -> str:
    """``part`` of ``whole`` as ``12.3%``: rounded, except that it reads ``100.0%`` only when
    nothing is left (6,036 of 6,038 is ``99.9%``) and ``0.0%`` only when nothing is done."""
    if whole <= 0:
        return "100.0%"
    tenths = round(part * 1000 / whole)
    if part < whole:
        tenths = min(tenths, 999)
    if part > 0:
        tenths = max(tenths, 1)
    return f"{tenths // 10}.{tenths % 10}%"


def format_eta(seconds: float | None) -> str:
    """``45s``, ``2m``, ``1h05m``; ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m"


class LineProgress:
    """One ``BACKFILL progress`` line every ``interval`` seconds (and a last one at the end).

    With ``heartbeat``, a line also comes when nothing finishes for an interval (S3 down, a
    long retry, a huge file), ending ``(waiting: nothing finished for 2m)``: a log that goes
    quiet for minutes looks like a hung process to the operator watching it.
    """

    def __init__(
        self,
        emit: Callable[[str], None] | None = None,
        *,
        label: str = "BACKFILL",
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        heartbeat: bool = False,
    ) -> None:
        self.emit = emit or (lambda line: logger.info("%s", line))
        self.label = label
        self.interval = interval
        self.clock = clock
        self.heartbeat = heartbeat
        self.total = 0
        self.done = 0
        self._started = 0.0
        self._last = 0.0
        self._last_done = 0.0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._beat: threading.Thread | None = None

    def start(self, total: int) -> None:
        self.total = total
        self._started = self._last = self._last_done = self.clock()
        if self.heartbeat and self.interval > 0:
            self._beat = threading.Thread(
                target=self._beat_while_waiting, name="certstore-progress", daemon=True
            )
            self._beat.start()

    def _beat_while_waiting(self) -> None:
        while not self._closed.wait(self.interval):
            with self._lock:
                now = self.clock()
                if now - self._last < self.interval:
                    continue
                self._last = now
                waited = now - self._last_done
                self.emit(f"{self.line()} (waiting: nothing finished for {format_eta(waited)})")

    def line(self) -> str:
        """The current progress line."""
        elapsed = max(self.clock() - self._started, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else None
        return (
            f"{self.label} progress {self.done}/{self.total} "
            f"({percent_text(self.done, self.total)}) "
            f"{rate:.1f} obj/s ETA {format_eta(eta)}"
        )

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        with self._lock:
            self.done += items
            now = self._last_done = self.clock()
            if now - self._last >= self.interval:
                self._last = now
                self.emit(self.line())

    def close(self) -> None:
        self._closed.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        with self._lock:
            self.emit(self.line())


class RichProgress:
    """A rich progress bar with rate, transferred bytes and ETA (for a terminal)."""

    def __init__(self, description: str = "backfill", stream: TextIO | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as _Bar

        self._bar: Any = _Bar(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=Console(file=stream or sys.stderr),
        )
        self._description = description
        self._task: Any = None
        self._started = 0.0
        self._done = 0

    def start(self, total: int) -> None:
        self._bar.start()
        self._started = time.monotonic()
        self._task = self._bar.add_task(self._description, total=total, rate="")

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        self._done += items
        elapsed = max(time.monotonic() - self._started, 1e-9)
        self._bar.update(self._task, advance=items, rate=f"{self._done / elapsed:.1f} obj/s")

    def close(self) -> None:
        self._bar.stop()


def progress_for(
    stream: TextIO, emit: Callable[[str], None], *, label: str = "BACKFILL", interval: float = 5.0
) -> Progress:
    """A bar when ``stream`` is a terminal, else periodic lines through ``emit``."""
    if stream.isatty():
        return RichProgress(label.lower(), stream)
    return LineProgress(emit, label=label, interval=interval, heartbeat=True)
