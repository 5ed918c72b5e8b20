"""What a long-running library function reports while it works; the CLI draws it on stderr.

A function that may take seconds (loading, tracing, exporting, comparing, timing) takes a
``progress`` argument and calls ``step("what it does now")`` at each step and, where it
counts, ``advance(done, total)``. The library never prints: the CLI passes an object that
draws a transient status line or bar on a terminal and nothing otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Progress:
    """Receives progress reports. This base class ignores them (the default everywhere)."""

    def step(self, message: str) -> None:
        """A new step starts: ``message`` says what is being done ("loading m.keras")."""

    def advance(self, done: int, total: int | None = None) -> None:
        """``done`` of ``total`` units of the current step are done (samples, runs...)."""


SILENT = Progress()


class _Calls(Progress):
    """Adapts the plain callbacks the library took before: ``say(message)`` or ``advance(done, total)``."""

    def __init__(self, on_step: Callable[[str], Any] | None, on_advance: Callable | None):
        self._on_step, self._on_advance = on_step, on_advance

    def step(self, message: str) -> None:
        if self._on_step is not None:
            self._on_step(message)

    def advance(self, done: int, total: int | None = None) -> None:
        if self._on_advance is not None:
            self._on_advance(done, total)


def as_progress(value: Any, *, callable_is: str = "step") -> Progress:
    """A Progress for ``value``: a Progress as is, None as silent, a function as one callback.

    ``callable_is`` says what a plain function receives: ``"step"`` (a message) or
    ``"advance"`` (done, total).
    """
    if value is None:
        return SILENT
    if isinstance(value, Progress):
        return value
    if not callable(value):
        raise TypeError(
            f"progress must be a graphkit.progress.Progress or a function, not {value!r}"
        )
    if callable_is == "advance":
        return _Calls(None, value)
    return _Calls(value, None)
