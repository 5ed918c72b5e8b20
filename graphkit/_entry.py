"""The ``graphkit`` console script: Ctrl-C handling first, then the CLI.

``graphkit.interrupts`` imports only the standard library, so it is installed before
``typer`` and the rest of the CLI load: an interrupt during those imports also gives one
``error: interrupted`` line and exit 130, not a KeyboardInterrupt traceback.
"""

from __future__ import annotations

import time


def main() -> None:
    from graphkit import _started

    _started.STARTED = time.perf_counter()  # export's "start-up" stage is measured from here
    from graphkit import interrupts

    interrupts.install()
    from graphkit.cli import main as cli_main

    cli_main()
