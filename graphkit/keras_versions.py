"""Which Keras saved a model file, and how its configs are quoted in loading errors.

A ``.keras`` written by a newer Keras than the one running may carry config keys or classes
that this Keras does not know: its errors then read as if the file were broken or old. So
the version the file records comes first in such an error ("saved by Keras 3.99.0; this is
Keras 3.15.1"), and as a note when the file loads all the same. The version is read from the
file's own metadata (``metadata.json`` in a ``.keras``, the ``keras_version`` attribute of an
``.h5``), which is untrusted: only a plain version string is ever shown.
"""

from __future__ import annotations

import ast
import json
import re
import zipfile
from pathlib import Path

# metadata.json is some 70 bytes; more than this is not Keras' and is not read.
MAX_METADATA_BYTES = 64 << 10
# Quoted configs in messages: at most this many characters, whole keys, "..." for the rest.
QUOTE_WIDTH = 100

_VERSION_TEXT = re.compile(r"[0-9][0-9A-Za-z.+-]{0,39}")
_OLDER_KERAS_GUESS = " (a model saved by an older Keras?)"


def saved_keras_version(path: str | Path) -> str | None:
    """The Keras version a model file says it was saved by, or None (absent, unreadable, odd)."""
    path = Path(path)
    raw: object = None
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                with zf.open("metadata.json") as fh:
                    data = fh.read(MAX_METADATA_BYTES + 1)
            if len(data) <= MAX_METADATA_BYTES:
                meta = json.loads(data)
                raw = meta.get("keras_version") if isinstance(meta, dict) else None
        else:  # read in a child process: a damaged file cannot crash this one
            from graphkit.h5_probe import probe

            raw = probe(path).version
    except Exception:  # a file Keras then fails on in its own way; the version is a bonus
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    return raw if isinstance(raw, str) and _VERSION_TEXT.fullmatch(raw) else None


def running_keras_version() -> str:
    import keras

    return keras.__version__


def _release(version: str) -> tuple[int, ...] | None:
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    return tuple(int(g or 0) for g in m.groups()) if m else None


def newer_keras(path: str | Path) -> str | None:
    """ "saved by Keras 3.99.0; this is Keras 3.15.1" when the file is from a newer Keras."""
    saved = saved_keras_version(path)
    if saved is None:
        return None
    running = running_keras_version()
    theirs, ours = _release(saved), _release(running)
    if theirs is None or ours is None or theirs <= ours:
        return None
    return f"saved by Keras {saved}; this is Keras {running}"


def explain(path: str | Path, message: str) -> str:
    """A loading error's message, led by the versions when the file is from a newer Keras."""
    newer = newer_keras(path)
    if newer is None:
        return message
    return f"{newer}: {message.removesuffix(_OLDER_KERAS_GUESS)}"


def note_if_newer(path: str | Path, notes: list[str] | None) -> None:
    """Add a note to ``notes`` (if given) when a file from a newer Keras loaded all the same."""
    if notes is None:
        return
    newer = newer_keras(path)
    if newer is not None:
        notes.append(f"{newer}: it loaded, but check what it computes (verify)")


def quoted_config(text: str, start: int, width: int = QUOTE_WIDTH) -> str:
    """The Python literal (a config dict) at ``text[start]``, quoted in at most about ``width``
    characters: whole keys, nested values shortened to ``{...}``, ``...`` for the keys left out.
    """
    literal = _balanced(text, start)
    try:
        value = ast.literal_eval(literal) if literal is not None else None
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    if value is None:  # not a literal: cut the text itself, never inside a word
        rest = text[start:]
        if len(rest) <= width:
            return rest
        return rest[:width].rsplit(" ", 1)[0] + " ..."
    return short_repr(value, width)


def short_repr(value: object, width: int = QUOTE_WIDTH) -> str:
    """``repr(value)`` if it fits in ``width``; else dicts keep their keys whole as far as they
    fit (at least the first), values shrink to ``{...}``/``[...]``/``...``, the rest is ``...``."""
    text = repr(value)
    if len(text) <= width:
        return text
    if isinstance(value, dict):
        items = list(value.items())
        parts: list[str] = []
        used = 2  # the braces
        for i, (key, item) in enumerate(items):
            head = f"{short_repr(key, width)}: "  # whole, unless longer than the width
            tail = 0 if i == len(items) - 1 else len(", ...")
            sep = 2 if parts else 0
            room = width - used - sep - len(head) - tail
            if parts and room < len("{...}"):
                break
            part = head + short_repr(item, max(room, len("{...}")))
            parts.append(part)
            used += sep + len(part)
        if len(parts) < len(items):
            parts.append("...")
        return "{" + ", ".join(parts) + "}"
    if isinstance(value, list):
        return "[...]"
    if isinstance(value, tuple):
        return "(...)"
    if isinstance(value, (set, frozenset)):
        return "{...}"
    return "..."


def _balanced(text: str, start: int) -> str | None:
    """``text[start:end]`` for the bracketed literal that opens at ``start``, quotes respected."""
    closing = {"{": "}", "[": "]", "(": ")"}
    if start >= len(text) or text[start] not in closing:
        return None
    stack: list[str] = []
    quote = None
    i = start
    while i < len(text):
        c = text[i]
        if quote is not None:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c in closing:
            stack.append(closing[c])
        elif c in ")]}":
            if not stack or c != stack.pop():
                return None
            if not stack:
                return text[start : i + 1]
        i += 1
    return None
