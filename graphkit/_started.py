"""When the console script started: set by ``graphkit._entry.main``, read by export's
"start-up" stage. Imports nothing, so that both can use it without an import circle."""

from __future__ import annotations

STARTED: float | None = None  # None when the CLI is called another way (tests, Python)
