"""The one exception type that means "the user gave us something we cannot use", and error text."""

from __future__ import annotations

import re


class GraphkitError(Exception):
    """A user error: bad file, bad option, model we refuse to touch.

    The CLI prints it as a single ``error: <message>`` line and exits 2.
    Any other exception is a bug in graphkit and keeps its traceback.

    The message names what the caller wrote: a Python caller's arguments
    (``target="coreml" needs fixed_shapes={NAME: DIMS}``). Where the CLI spells the same
    mistake with its flags (``--target coreml needs --fixed-shape NAME=DIMS``), ``cli`` holds
    that wording and the CLI prints ``for_cli()``.
    """

    cli: str | None = None  # the message in the CLI's words, where they differ

    def __init__(self, message: str = "", *args: object, cli: str | None = None) -> None:
        super().__init__(message, *args)
        if cli is not None:
            self.cli = cli

    def for_cli(self) -> str:
        """The one-line message the CLI prints: flags where Python names arguments."""
        text = self.cli if self.cli is not None else str(self)
        return text.replace("\n", " ")


MAX_CAUSE = 300

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# TensorFlow's decorations around the real message: {{function_node ...}}, {{node ...}},
# [[...]] node lists, a trailing [Op:...] and " name: " suffix.
_TF_NOISE = re.compile(
    r"\{\{(?:function_)?node [^}]*\}\}|\[\[.*?\]\]|\[Op:[^\]]*\](?: name: ?\S*)?"
)
# Lines that frame the cause rather than state it.
_FRAME_LINES = re.compile(
    r"^(Graph execution error:?|Detected at node .*|Exception encountered when calling .*|"
    r"Arguments received by .*|Traceback \(most recent call last\):|"
    r"Stack trace for op definition:?.*)$"
)


def cause_line(text: str) -> str:
    """The line of an error message that names the cause, without framework decoration.

    TensorFlow puts "Graph execution error:" and a Python stack first and the cause
    (``slice index 21 of dimension 0 out of bounds.``) further down; Keras wraps layer
    errors in "Exception encountered when calling X.call()" and an argument listing.
    """
    text = _ANSI.sub("", text or "")
    lines = text.splitlines()
    for i, raw in enumerate(lines):
        if not raw.strip() or raw[:1].isspace():  # stack frames, code, argument bullets
            continue
        line = _TF_NOISE.sub("", raw).strip()
        if not line or _FRAME_LINES.match(line):
            continue
        # Indented lines right below the cause continue it (onnxruntime's "index: 1 Got: 3
        # Expected: 6"), unless they are a stack frame or TensorFlow's [[node]] list.
        for more in lines[i + 1 :]:
            if not more[:1].isspace() or not more.strip():
                break
            extra = _TF_NOISE.sub("", more).strip()
            if more.strip().startswith(("File ", "[[")) or not extra:
                break
            line = f"{line} {extra}"
        return line
    for raw in lines:  # nothing but framing: keep the first real words
        line = _TF_NOISE.sub("", raw).strip()
        if line:
            return line
    return ""


def one_line(exc: BaseException, *, with_type: bool = True, limit: int = MAX_CAUSE) -> str:
    """``TypeName: cause`` on one line, for error messages built from a caught exception."""
    cause = cause_line(str(exc))
    if len(cause) > limit:
        cause = cause[: limit - 3].rstrip() + "..."
    name = type(exc).__name__
    if not cause:
        return name
    return f"{name}: {cause}" if with_type else cause
