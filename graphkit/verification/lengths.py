"""The length of synthesized variable axes: one that every model being compared accepts.

A model whose valid convolutions and poolings shorten the sequence needs inputs of a
minimum length: keras.io's pretrained-word-embeddings classifier (Conv1D(5) and
MaxPooling1D(5), three times) needs 149 steps, its "text classification from scratch"
model (two Conv1D(7, strides=3)) 25. Shorter, Keras fails ("Computed output size would
be negative") or, worse, computes on an empty axis while onnxruntime refuses the batch.

So before synthesizing, graphkit checks the length on each model: Keras' shape rules
(every layer's ``compute_output_spec``: nothing is computed), then one tiny batch run for
real (the eager call, onnxruntime). Where the default length does not fit, the shortest
length that Keras' shape rules accept is computed from the layers (a search over those
rules), else lengths are tried by doubling; the report says which length ran and why.
A length the user chose is used as it is, or refused with the cause and the flag to use.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from graphkit.backends.base import Backend, InputSpec
from graphkit.errors import GraphkitError, one_line
from graphkit.progress import SILENT, Progress

DEFAULT_SEQ_LEN = 16
MAX_SEQ_LEN = 4096  # the longest length tried without being asked for
TRIAL_ROWS = 2  # samples in the batch that tries a length


@dataclass
class LengthChoice:
    """The length of every variable (None) axis, and what the report says about it."""

    length: int
    note: str | None = None  # None: the default or the user's length, and it fit

    def __int__(self) -> int:
        return self.length


@dataclass
class _Problem:
    role: str  # "reference", "candidate", "model"
    length: int
    cause: str
    by_rules: bool = False  # found by Keras' shape rules (nothing ran)

    def __str__(self) -> str:
        return f"at length {self.length} the {self.role} fails: {self.cause}"


def fit_seq_len(
    backends: Sequence[tuple[str, Backend]],
    specs: list[InputSpec],
    seq_len: int | None = None,
    *,
    default: int = DEFAULT_SEQ_LEN,
    seed: int = 0,
    progress: Progress = SILENT,
) -> LengthChoice:
    """A length for the variable axes of ``specs`` that every backend accepts.

    ``backends`` are ``(role, backend)`` pairs ("reference", "candidate"). ``seq_len``
    given: that length, or a GraphkitError naming the cause and ``--seq-len``. None:
    ``default`` if it fits, else the shortest length Keras' shape rules accept (checked by a
    run), else the first of ``2 * default``, ``4 * default``... up to MAX_SEQ_LEN that runs.
    """
    if seq_len is not None and int(seq_len) < 1:
        raise GraphkitError(
            f"seq_len must be at least 1, got {seq_len}",
            cli=f"--seq-len must be at least 1, got {seq_len}",
        )
    if not any(d is None for spec in specs for d in spec.shape[1:]):
        return LengthChoice(int(seq_len) if seq_len is not None else default)
    start = int(seq_len) if seq_len is not None else default
    problem = _problem(backends, specs, start, seed)
    if problem is None:
        return LengthChoice(start)
    progress.step("finding an input length the model accepts")
    minimum, below = _shortest_by_shape_rules(backends, specs)
    rules = minimum is not None  # rules that refuse every length say nothing about lengths
    if (
        not rules
        and problem.by_rules
        and _problem(backends, specs, start, seed, rules=False) is None
    ):
        return LengthChoice(start)  # the model runs: its rules' refusal was not about lengths
    if seq_len is not None:
        if minimum is not None and minimum > start:
            fix = f"it needs at least {minimum}: pass --seq-len {minimum} or more"
            py_fix = f"it needs at least {minimum}: pass seq_len={minimum} or more"
        else:
            fix, py_fix = "pass another --seq-len", "pass another seq_len"
        cause = f"the {problem.role} fails: {problem.cause}"
        raise GraphkitError(
            f"seq_len={start} does not fit the model: {cause}; {py_fix}, or inputs=FILE.npz",
            cli=f"--seq-len {start} does not fit the model: {cause}; {fix}, or --inputs FILE.npz",
        )
    tried = [start]
    candidates = []
    if minimum is not None and minimum > start:
        candidates.append(minimum)
    else:  # shorter first: a model with a position table refuses what is longer than it
        length = start // 2
        while length >= max(1, minimum or 1):
            candidates.append(length)
            length //= 2
    length = start * 2
    while length <= MAX_SEQ_LEN:
        if minimum is None or length > minimum:
            candidates.append(length)
        length *= 2
    for length in candidates:
        progress.step(f"trying input length {length}")
        if _problem(backends, specs, length, seed, rules=rules) is None:
            if length == minimum:
                why = f"at {below.length}, {below.cause}" if below else "Keras' shape rules"
                return LengthChoice(
                    length,
                    f"variable axes synthesized with length {length}, not {start}: the model "
                    f"needs at least {length} ({why}); --seq-len sets another",
                )
            return LengthChoice(
                length,
                f"variable axes synthesized with length {length}, not {start}: {problem}; "
                "--seq-len sets another",
            )
        tried.append(length)
    head = f"no input length from {min(tried)} to {max(tried)} fits the model: {problem}"
    raise GraphkitError(
        f"{head}; pass seq_len=L (a length the model takes) or inputs=FILE.npz",
        cli=f"{head}; pass --seq-len L (a length the model takes) or --inputs FILE.npz",
    )


def _shapes(specs: list[InputSpec], length: int) -> dict[str, tuple]:
    shapes = {}
    for spec in specs:
        rows = spec.shape[0] if spec.shape and spec.shape[0] is not None else TRIAL_ROWS
        shapes[spec.name] = (rows,) + tuple(length if d is None else d for d in spec.shape[1:])
    return shapes


def _problem(backends, specs, length: int, seed: int, *, rules: bool = True) -> _Problem | None:
    """Why ``length`` does not fit (shape rules first, then one tiny batch), or None."""
    shapes = _shapes(specs, length)
    for role, backend in backends if rules else ():
        cause = backend.shape_problem(shapes)
        if cause is not None:
            return _Problem(role, length, _first_sentence(cause), by_rules=True)
    from graphkit.verification.inputs import synthesize

    batch = next(synthesize(specs, TRIAL_ROWS, TRIAL_ROWS, length, seed))
    for role, backend in backends:
        try:
            outputs = backend.trial(batch)
        except GraphkitError:
            raise
        except Exception as exc:
            return _Problem(role, length, _first_sentence(one_line(exc)))
        for name, out in zip(backend.output_names, outputs):
            if 0 in getattr(out, "shape", ()):
                return _Problem(role, length, f"output {name!r} is empty (shape {out.shape})")
    return None


def _shortest_by_shape_rules(backends, specs) -> tuple[int | None, _Problem | None]:
    """The shortest length in [1, MAX_SEQ_LEN] that every Keras backend's shape rules accept,
    and why one less fails; (None, None) where the rules refuse even MAX_SEQ_LEN or no
    backend has shape rules (the search assumes longer inputs never break them)."""

    def refused(length: int) -> _Problem | None:
        shapes = _shapes(specs, length)
        for role, backend in backends:
            cause = backend.shape_problem(shapes)
            if cause is not None:
                return _Problem(role, length, _first_sentence(cause))
        return None

    if refused(1) is None or refused(MAX_SEQ_LEN) is not None:
        return None, None
    low, high = 1, MAX_SEQ_LEN  # refused(low), accepted(high)
    while high - low > 1:
        mid = (low + high) // 2
        if refused(mid) is None:
            high = mid
        else:
            low = mid
    return high, refused(high - 1)


def _first_sentence(text: str) -> str:
    """The cause, short. Keras: "Computed output size would be zero or negative. Received
    `inputs shape=...`" (the rest repeats shapes); onnxruntime: "[ONNXRuntimeError] : 2 :
    INVALID_ARGUMENT : Non-zero status code returned while running Conv node. Name:'...'
    Status Message: Invalid input shape: {1,4}" (the node and its message)."""
    ort = re.search(r"running (\w+) node\. Name:'([^']*)' Status Message: (.*)", text)
    if ort:
        return f"onnxruntime's {ort.group(1)} node {ort.group(2)!r}: {ort.group(3)}"
    head, sep, _ = text.partition(". Received")
    return head if sep else text
