"""Progress of long commands: rich bars on a terminal, plain lines otherwise, nothing for --json.

``verde delegate`` and ``verde train-coded`` report four kinds of progress — narrative
notes, training steps per provider, dispute rounds, bytes transferred — to a
:class:`ProgressView`. :func:`progress_view` picks the view: on a terminal, live ``rich`` bars
with rates (steps/s, bytes/s) and elapsed time; when stderr is a file or a pipe, one plain
line per change worth a line (so logs stay readable); with ``--json``, nothing, so stdout holds
the JSON document alone. Everything goes to stderr; stdout is the command's result.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import click
from rich import filesize
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text


class ProgressView:
    """The quiet view (``--json``); the other views override every method."""

    def note(self, text: str) -> None:
        """A line of narrative ("3 results, 2 distinct", a verdict...)."""

    def steps(self, label: str, done: int, total: int) -> None:
        """Training progress of one provider (``label``: its address)."""

    def rounds(self, key: str, label: str, phase: str, rounds: int) -> None:
        """A dispute (``key``: its id) reached round ``rounds`` in ``phase``."""

    def finished(self, key: str, summary: str) -> None:
        """The dispute ``key`` ended (``summary``: its label and outcome, in a few words)."""

    def transfer(self, label: str, done_bytes: int, total_bytes: int | None = None) -> None:
        """``done_bytes`` of a transfer (cumulative) went through."""

    def close(self) -> None:
        """Stop drawing (the last state stays on screen)."""


class _Detail(ProgressColumn):
    """Counts and rates in the unit of each task: steps, rounds or bytes."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "")
        done, speed = int(task.completed), task.speed
        if unit == "bytes":
            text = filesize.decimal(done)
            if task.total:
                text += f" / {filesize.decimal(int(task.total))}"
            if speed:
                text += f"  {filesize.decimal(int(speed))}/s"
        elif unit == "steps":
            text = f"{done}/{int(task.total or 0)} steps"
            if speed:
                text += f"  {speed:.1f} steps/s"
        else:
            text = f"round {done}"
        return Text(text, style="progress.data.speed")


class RichView(ProgressView):
    """Live bars on a terminal (``rich``)."""

    def __init__(self, console: Console) -> None:
        self.bars = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                             BarColumn(bar_width=20), _Detail(), TimeElapsedColumn(),
                             console=console, refresh_per_second=8)
        self.tasks: dict[tuple[str, str], Any] = {}
        self._rounds: dict[str, int] = {}
        self._lock = threading.Lock()
        self.bars.start()

    def _task(self, kind: str, key: str, description: str, unit: str,
              total: float | None) -> Any:
        with self._lock:
            if (kind, key) not in self.tasks:
                self.tasks[(kind, key)] = self.bars.add_task(description, total=total,
                                                             unit=unit)
            return self.tasks[(kind, key)]

    def note(self, text: str) -> None:
        self.bars.console.print(text, markup=False, highlight=False)

    def steps(self, label: str, done: int, total: int) -> None:
        task = self._task("steps", label, f"train {label}", "steps", total)
        self.bars.update(task, completed=done, total=total)

    def rounds(self, key: str, label: str, phase: str, rounds: int) -> None:
        task = self._task("dispute", key, f"dispute {label}", "rounds", None)
        self._rounds[key] = rounds
        self.bars.update(task, completed=rounds, description=f"dispute {label} {phase}")

    def finished(self, key: str, summary: str) -> None:
        task = self._task("dispute", key, "dispute", "rounds", None)
        done = max(self._rounds.get(key, 0), 1)
        self.bars.update(task, total=done, completed=done, description=f"dispute {summary}")

    def transfer(self, label: str, done_bytes: int, total_bytes: int | None = None) -> None:
        task = self._task("bytes", label, label, "bytes", total_bytes)
        self.bars.update(task, completed=done_bytes, total=total_bytes)

    def close(self) -> None:
        self.bars.stop()


class PlainView(ProgressView):
    """One line per change worth a line, for logs and pipes (no cursor tricks)."""

    def __init__(self, stream: TextIO, every_s: float = 5.0) -> None:
        self.stream = stream
        self.every_s = every_s
        self._last: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _line(self, text: str) -> None:
        with self._lock:
            click.echo(text, file=self.stream)

    def _due(self, key: str, value: Any, final: bool) -> bool:
        """Print when ``value`` changed and (a final value, or ``every_s`` passed)."""
        now = time.monotonic()
        with self._lock:
            when, last = self._last.get(key, (-1e9, None))
            if value == last or (not final and now - when < self.every_s):
                return False
            self._last[key] = (now, value)
            return True

    def note(self, text: str) -> None:
        self._line(text)

    def steps(self, label: str, done: int, total: int) -> None:
        if self._due(f"steps {label}", done, done >= total or done == 0):
            self._line(f"{label}: step {done}/{total}")

    def rounds(self, key: str, label: str, phase: str, rounds: int) -> None:
        if self._due(f"dispute {key}", (phase, rounds), True):
            self._line(f"  dispute {label}: round {rounds} ({phase})")

    def finished(self, key: str, summary: str) -> None:
        """Nothing: the verdict comes as a note."""

    def transfer(self, label: str, done_bytes: int, total_bytes: int | None = None) -> None:
        final = total_bytes is not None and done_bytes >= total_bytes
        if self._due(f"bytes {label}", done_bytes, final):
            self._line(f"{label}: {filesize.decimal(done_bytes)}"
                       + (f" of {filesize.decimal(total_bytes)}" if total_bytes else ""))


@contextmanager
def progress_view(as_json: bool, stream: TextIO | None = None) -> Iterator[ProgressView]:
    """The view for this command's output: quiet (--json), rich (terminal) or plain."""
    out = stream if stream is not None else sys.stderr
    if as_json:
        view: ProgressView = ProgressView()
    else:
        console = Console(file=out)
        view = RichView(console) if console.is_terminal else PlainView(out)
    try:
        yield view
    finally:
        view.close()
