"""The one exception type that means "the user gave us something we cannot use"."""

from __future__ import annotations


class GraphkitError(Exception):
    """A user error: bad file, bad option, model we refuse to touch.

    The CLI prints it as a single ``error: <message>`` line and exits 2.
    Any other exception is a bug in graphkit and keeps its traceback.
    """
