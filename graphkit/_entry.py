"""The ``graphkit`` console script: Ctrl-C handling first, then the CLI.

``graphkit.interrupts`` imports only the standard library, so it is installed before
``typer`` and the rest of the CLI load: an interrupt during those imports also gives one
``error: interrupted`` line and exit 130, not a KeyboardInterrupt traceback.
"""

from __future__ import annotations

import time

# when the console script started (None when the CLI is called another way, as in tests):
# export's "start-up" stage is measured from here
STARTED: float | None = None


def main() -> None:
    global STARTED
    STARTED = time.perf_counter()
    from graphkit import interrupts

    interrupts.install()
    from graphkit.cli import main as cli_main

    cli_main()
