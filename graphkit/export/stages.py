"""The stages every export shares: load -> repair -> inputs -> (trace + format writer) ->
atomic write -> verify -> report.

Each stage is a function with typed input and output; a format (``graphkit.export.onnx``,
``graphkit.export.litert``) composes them around its own writer. ``Stages`` times each one
(``ExportReport.stages``: ``--json``, ``--debug``) and tells the user's progress about it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphkit.errors import GraphkitError
from graphkit.export.report import RUNTIMES, NotEquivalentError
from graphkit.progress import as_progress


class Stages:
    """Seconds per stage, in the order run; ``with stages("trace", "tracing ..."):``."""

    def __init__(self, progress=None):
        self.say = as_progress(progress)
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str, message: str | None = None) -> Iterator[None]:
        if message:
            self.say.step(message)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


@dataclass
class Loaded:
    """The model to export: as the user gave it (``model``, the check's reference), and the
    model to trace (``exported``: the repaired copy, what the eager call computes)."""

    model: Any
    exported: Any
    source: str
    repairs: list[Any] = field(default_factory=list)
    input_shapes: dict[str, tuple] = field(default_factory=dict)


def load(
    model, stages: Stages, *, unsafe: bool = False, imports=(), onehot_lambdas=()
) -> tuple[Any, str | None]:
    """Stage "load": a path is read (safe mode unless ``unsafe``); a model is taken as it is.
    Returns ``(model, source path or None)``."""
    if not isinstance(model, (str, os.PathLike)):
        return model, None
    from graphkit.io import load_model

    source = str(model)
    with stages("load", f"loading {source}"):
        model = load_model(
            model, unsafe=unsafe, imports=imports, compile=False, onehot_lambdas=onehot_lambdas
        )
    return model, source


def load_to(
    model,
    output,
    default_output: Callable[[Any], Path],
    stages: Stages,
    *,
    force: bool,
    unsafe: bool = False,
    imports=(),
    onehot_lambdas=(),
) -> tuple[Any, str | None, Path | None]:
    """Stage "load" with the file it is for: ``output``, or ``default_output(model)`` beside
    a model given by path; the output is checked again once loaded (a load may take a
    minute). Returns ``(model, source path or None, output or None)``."""
    from graphkit.io import check_output_path

    if output is None and isinstance(model, (str, os.PathLike)):
        output = default_output(model)
    model, source = load(
        model, stages, unsafe=unsafe, imports=imports, onehot_lambdas=onehot_lambdas
    )
    if output is not None:
        output = check_output_path(Path(output), force=force)
    return model, source, output


def repair(model, source: str | None, stages: Stages, *, fixed_shapes=None) -> Loaded:
    """Stages "repair" and "inputs": a subclassed model is seen on the shape it was built
    with; fixed shapes are checked against the model's inputs (names, ranks, what its layers
    take) before the slow trace; the repair rules make what is traced compute what the eager
    call computes (Keras' TimeDistributed is wrong when traced)."""
    from graphkit.conversion import repair as repair_rules
    from graphkit.subclassed import functional_view

    with stages("repair"):
        model = functional_view(model, source)
        exported, repairs = repair_rules(model)
    shapes = {t.name: tuple(t.shape) for t in model.inputs}
    if fixed_shapes:
        from graphkit.onnx_passes import fix_shapes

        with stages("inputs"):  # names and ranks known now: wrong ones fail before tracing
            fix_shapes.check_against(shapes, fixed_shapes)
            check_fixed_shapes_fit(model, source, fixed_shapes)
    return Loaded(
        model, exported, source or f"<keras model {model.name!r}>", repairs, input_shapes=shapes
    )


def check_fixed_shapes_fit(model, source, fixed_shapes) -> None:
    """Keras' shape rules on the fixed shapes: a length a convolution cannot take is refused
    now, naming the layer, instead of failing in the check's first run."""
    from graphkit.backends.keras_backend import KerasBackend

    fixed = {name: tuple(dims) for name, dims in fixed_shapes.items()}
    shapes = {t.name: fixed.get(t.name, tuple(t.shape)) for t in model.inputs}
    if any(None in shape for shape in shapes.values()):
        return  # an input left dynamic: the check finds its length
    problem = KerasBackend(model, source).shape_problem(shapes)
    if problem:
        given = ", ".join(f"{n}={'x'.join(map(str, d))}" for n, d in fixed.items())
        raise GraphkitError(
            f"fixed_shapes={fixed!r}: the model does not take it: {problem}",
            cli=f"--fixed-shape {given}: the model does not take it: {problem}",
        )


@dataclass
class Check:
    """What export's own check runs on: ``samples`` synthesized samples with variable axes
    ``seq_len`` long (None: found), or the arrays of ``inputs``; ``ranges`` the user's."""

    samples: int
    seq_len: int | None
    inputs: Any
    progress: Any
    ranges: Any = None


def verify_against_keras(
    report, model, candidate, check: Check | None, stages: Stages, *, label: str
) -> None:
    """Stage "verify": ``candidate`` (a backend over the written file) against the eager
    Keras ``model``, with verify's rules (coverage, weights, earned tolerance). Sets
    ``report.verify``; a difference raises NotEquivalentError (nothing is written)."""
    if check is None:
        return
    from graphkit.backends.keras_backend import KerasBackend
    from graphkit.verification import check_signatures, fit_seq_len
    from graphkit.verification import verify as run_verify
    from graphkit.verification.inputs import apply_ranges, batch_size_apart

    runtime = RUNTIMES.get(report.format_name, report.format_name)
    with stages("verify", f"checking the export in {runtime} against Keras"):
        keras_side = KerasBackend(model, report.source)
        length = check.seq_len
        if check.inputs is None:  # both runtimes must take the length (a runtime may refuse it)
            specs = check_signatures(keras_side, candidate)
            length = fit_seq_len(
                [("Keras model", keras_side), (label, candidate)],
                apply_ranges(specs, check.ranges) if check.ranges else specs,
                check.seq_len,
                progress=check.progress,
            )
        result = run_verify(
            keras_side,
            candidate,
            check.inputs,
            samples=check.samples,
            seq_len=length,
            batch_size=batch_size_apart(16, int(length or 16)),
            progress=check.progress,
            **({"ranges": check.ranges} if check.ranges else {}),
        )
    report.verify = result
    if not result.equivalent:
        what = {"onnx": "ONNX model", "litert": "LiteRT model"}.get(report.format_name, label)
        raise NotEquivalentError(
            f"the exported {what} does not match the Keras model; nothing was written", result
        )


def write_file(
    output: Path | None,
    *,
    force: bool,
    write: Callable[[Path], None],
    check: Callable[[Path], None],
    stages: Stages,
    prefix: str,
    name: str,
) -> int:
    """Stage "write": ``write(path)`` into a temporary file beside ``output``, ``check(path)``
    (verification, target checks: may raise), then one rename over ``output``: a failure
    anywhere leaves ``output`` as it was. With no ``output`` (an in-memory check) it goes to
    a temporary folder and is removed. Returns the written size in bytes."""
    from graphkit.io import atomic_output

    if output is None:
        from graphkit.interrupts import temporary_directory

        with temporary_directory(prefix=prefix) as folder:
            path = folder / name
            with stages("write"):
                write(path)
            check(path)
            return path.stat().st_size
    with atomic_output(output, force=force) as tmp:  # removed again if the check fails
        with stages("write"):
            write(tmp)
        check(tmp)
        return tmp.stat().st_size
