"""What the CLI draws on a terminal while it works: one transient line on stderr.

Imported only when stderr is a terminal (rich costs ~35 ms to import).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar
from rich.table import Table
from rich.text import Text

from graphkit.progress import Progress


@contextlib.contextmanager
def terminal() -> Iterator[Console]:
    """A Console on a copy of stderr's descriptor: it keeps drawing while TensorFlow's import
    silences descriptor 2 (``graphkit._tf.quiet_tensorflow``)."""
    try:
        stream = os.fdopen(os.dup(sys.stderr.fileno()), "w")
    except (OSError, ValueError, AttributeError):
        yield Console(stderr=True)
        return
    try:
        yield Console(file=stream)
    finally:
        stream.close()


class _CountBar(ProgressColumn):
    """A bar and ``done/total`` while a step counts; nothing for a step that does not."""

    def __init__(self):
        super().__init__()
        self.bar = BarColumn()

    def render(self, task):
        if task.total is None:
            return Text("")
        grid = Table.grid(padding=(0, 1))
        grid.add_row(self.bar.render(task), Text(f"{int(task.completed)}/{int(task.total)}"))
        return grid


class LiveProgress(Progress):
    """The library's steps on a live line: spinner, step, bar and count, time elapsed."""

    def __init__(self, bar: Bar):
        self.bar = bar
        self.task = bar.add_task("", total=None)

    def step(self, message: str) -> None:
        self.bar.update(self.task, description=message, completed=0, total=None)
        self.bar.refresh()  # drawn now: a short step is seen too, not only at the next tick

    def advance(self, done: int, total: int | None = None) -> None:
        self.bar.update(self.task, completed=done, total=total)


@contextlib.contextmanager
def live_progress(first: str) -> Iterator[LiveProgress]:
    with terminal() as console:
        columns = (SpinnerColumn(), TextColumn("{task.description}"), _CountBar())
        # stdout is never redirected: it holds the report (and --json) alone
        with Bar(
            *columns, TimeElapsedColumn(), console=console, transient=True, redirect_stdout=False
        ) as bar:
            shown = LiveProgress(bar)
            shown.step(first)
            yield shown


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner and ``message`` (a step that reports nothing more)."""
    with terminal() as console, console.status(message):
        yield
