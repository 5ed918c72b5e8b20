"""``graphkit bench``: latency of a model and of its other variant, in Keras and in onnxruntime;
of an .onnx file in onnxruntime, of a .tflite file in LiteRT."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphkit.errors import GraphkitError
from graphkit.progress import Progress, as_progress

DEFAULT_SEQ_LEN = 64


@dataclass
class BenchRow:
    variant: str
    runtime: str
    median_ms: float
    p90_ms: float
    nodes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "runtime": self.runtime,
            "median_ms": round(self.median_ms, 4),
            "p90_ms": round(self.p90_ms, 4),
            "onnx_nodes": self.nodes,
        }


@dataclass
class BenchReport:
    source: str
    batch_size: int
    seq_len: int
    runs: int
    provider: str
    rows: list[BenchRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fed: dict[str, tuple[tuple, str]] = field(default_factory=dict)  # name -> (shape, dtype)
    variable_axes: bool = True  # does any input have a variable (None) axis, set to seq_len?

    @property
    def batch(self) -> int:
        """The old name of ``batch_size``."""
        return self.batch_size

    def describe_inputs(self) -> str:
        return ", ".join(f"{n} {tuple(shape)} {dtype}" for n, (shape, dtype) in self.fed.items())

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "batch_size": self.batch_size,
            "batch": self.batch_size,  # the old key, kept for one release
            # None where no input has a variable axis (the option then changes nothing)
            "seq_len": self.seq_len if self.variable_axes else None,
            "inputs": {n: {"shape": list(shape), "dtype": d} for n, (shape, d) in self.fed.items()},
            "runs": self.runs,
            "provider": self.provider,
            "rows": [r.to_dict() for r in self.rows],
            "notes": self.notes,
        }

    def format(self) -> str:
        head = ["variant", "runtime", "median ms", "p90 ms", "ONNX nodes"]
        body = [
            [
                r.variant,
                r.runtime,
                f"{r.median_ms:.3f}",
                f"{r.p90_ms:.3f}",
                "-" if r.nodes is None else str(r.nodes),
            ]
            for r in self.rows
        ]
        widths = [max(len(x) for x in col) for col in zip(head, *body)]
        lines = [
            f"{self.source}: inputs {self.describe_inputs()}; {self.runs} timed runs after warm-up",
            "",
        ]
        for row in [head] + body:
            lines.append(
                "  ".join(
                    c.rjust(w) if i >= 2 else c.ljust(w)
                    for i, (c, w) in enumerate(zip(row, widths))
                ).rstrip()
            )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _batch_note(data: dict, batch_size: int, seq_len: int, specs=()) -> list[str]:
    """Say so where the timed batch is not the one asked for (see ``batch_plan``): a model
    fixed to one batch size, or a batch as long as the variable axes, avoided."""
    fed = len(next(iter(data.values()))) if data else batch_size
    if fed == batch_size:
        return []
    from graphkit.verification.inputs import fixed_batch

    fixed = fixed_batch(list(specs))
    if fixed is not None:
        return [f"timed batch {fed}, not {batch_size}: the model takes batches of {fixed} only"]
    return [
        f"timed batch {fed}, not {batch_size}: a batch as long as the variable axes "
        f"({seq_len}) is avoided (it hides models that mix the two axes up); "
        "--batch-size or --seq-len sets another"
    ]


def time_calls(
    fn: Callable[[], Any], runs: int, warmup: int, progress: Progress | None = None
) -> tuple[float, float]:
    """Median and 90th percentile wall time of ``fn()`` in milliseconds, after ``warmup`` calls.

    ``progress`` hears each call (warm-up included), outside the timed span."""
    total = warmup + runs
    for i in range(warmup):
        fn()
        if progress is not None:
            progress.advance(i + 1, total)
    samples = []
    for i in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
        if progress is not None:
            progress.advance(warmup + i + 1, total)
    samples.sort()
    p90 = samples[min(len(samples) - 1, int(round(0.9 * (len(samples) - 1))))]
    return statistics.median(samples), p90


def _variant_of(model) -> str:
    from graphkit.rules import variant_of

    return variant_of(model) or "model"


def check_bench_options(
    *,
    batch_size: int = 1,
    seq_len: int | None = None,
    runs: int = 1,
    warmup: int = 0,
    batch: int | None = None,
) -> None:
    """bench's numbers; cheap (the CLI checks them before importing TensorFlow).

    ``batch``: the old name of ``batch_size``."""
    batch_size = _batch_size(batch_size, batch, default=1)
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len), ("runs", runs)):
        if value is not None and int(value) < 1:
            flag = "--" + name.replace("_", "-")
            raise GraphkitError(
                f"{name} must be at least 1, got {value}",
                cli=f"{flag} must be at least 1, got {value}",
            )
    if warmup < 0:
        raise GraphkitError(f"warmup must be at least 0, got {warmup}")


def _batch_size(batch_size: int, batch: int | None, default: int) -> int:
    """``batch_size``, or the old ``batch`` keyword where only that one was given."""
    if batch is None:
        return batch_size
    if batch_size != default and batch_size != batch:
        raise GraphkitError(f"batch_size={batch_size} and batch={batch}: give batch_size only")
    return batch


def bench(
    model,
    *,
    batch_size: int = 32,
    seq_len: int | None = None,
    runs: int = 30,
    warmup: int = 5,
    provider: str = "cpu",
    both_variants: bool = True,
    ranges=None,
    unsafe: bool = False,
    imports=(),
    onehot_lambdas=(),
    progress: Callable[[str], None] | Progress | None = None,
    batch: int | None = None,
) -> BenchReport:
    """Time Keras (the checked trace, or eager) and onnxruntime for ``model`` (and its other variant where it has one).

    An ``.onnx`` file is timed in onnxruntime alone, a ``.tflite`` file in LiteRT alone.

    Variable axes are ``seq_len`` long; None: 64, or the length the model needs (noted).
    ``ranges``: ``{name: (low, high)}`` or ``["NAME=LOW:HIGH", ...]``, the values synthesized
    for integer inputs whose range graphkit cannot read from the model.
    ``progress``: a ``graphkit.progress.Progress``, or a function called with each step.
    ``batch``: the old name of ``batch_size`` (kept for one release).
    """
    from graphkit.backends import KerasBackend, LiteRTBackend, OnnxBackend, open_backend
    from graphkit.verification import fit_seq_len, has_variable_axes, synthesize
    from graphkit.verification.inputs import apply_ranges, parse_ranges

    batch_size = _batch_size(batch_size, batch, default=32)
    check_bench_options(batch_size=batch_size, seq_len=seq_len, runs=runs, warmup=warmup)
    parse_ranges(ranges)
    say = as_progress(progress)
    source = (
        str(model) if isinstance(model, (str, os.PathLike)) else f"<keras model {model.name!r}>"
    )
    if isinstance(model, (str, os.PathLike)):
        say.step(f"loading {model}")
    suffix = Path(model).suffix.lower() if isinstance(model, (str, os.PathLike)) else ""
    if suffix in (".onnx", ".tflite"):
        if suffix == ".tflite":
            backend, runtime = LiteRTBackend(model, provider=provider), "LiteRT"
        else:
            backend, runtime = OnnxBackend(model, provider=provider), "onnxruntime"
        specs = apply_ranges(backend.inputs, ranges) if ranges else backend.inputs
        choice = fit_seq_len(
            [("model", backend)], specs, seq_len, default=DEFAULT_SEQ_LEN, progress=say
        )
        report = BenchReport(source, batch_size, choice.length, runs, provider)
        report.notes += [choice.note] if choice.note else []
        data = next(synthesize(specs, batch_size, batch_size, choice.length, 0))
        report.fed = {k: (v.shape, str(v.dtype)) for k, v in data.items()}
        report.notes += _batch_note(data, batch_size, choice.length, specs)
        report.variable_axes = has_variable_axes(backend.inputs)
        say.step(f"timing {runtime} ({runs} runs)")
        med, p90 = time_calls(lambda: backend.run(data), runs, warmup, say)
        report.rows.append(BenchRow("model", f"{runtime.lower()} {provider}", med, p90))
        if suffix == ".tflite":
            report.notes.append(
                "LiteRT ran with ai-edge-litert's default threads (its Python Interpreter "
                "without num_threads: 1 thread)"
            )
        return report

    keras_backend = open_backend(
        model, unsafe=unsafe, imports=imports, onehot_lambdas=onehot_lambdas
    )
    assert isinstance(keras_backend, KerasBackend)
    specs = apply_ranges(keras_backend.inputs, ranges) if ranges else keras_backend.inputs
    choice = fit_seq_len(
        [("model", keras_backend)],
        specs,
        seq_len,
        default=DEFAULT_SEQ_LEN,
        progress=say,
    )
    seq_len = choice.length
    report = BenchReport(source, batch_size, seq_len, runs, provider)
    report.notes += [choice.note] if choice.note else []
    data = next(synthesize(specs, batch_size, batch_size, seq_len, 0))
    report.fed = {k: (v.shape, str(v.dtype)) for k, v in data.items()}
    report.notes += _batch_note(data, batch_size, seq_len, specs)
    report.variable_axes = has_variable_axes(keras_backend.inputs)
    # Time what convert and export produce, so that the variants compare like for like.
    from graphkit.conversion import repair

    base, repairs = repair(keras_backend.model)
    if base is not keras_backend.model:
        names = ", ".join(f.path for f in repairs if f.status == "repaired")
        report.notes.append(f"timed with Keras' TimeDistributed repaired ({names}), as export does")
        keras_backend = KerasBackend(base, keras_backend.source)

    from graphkit.rules import target_from

    variants = {_variant_of(base): base}
    other = target_from(_variant_of(base))
    if both_variants and other is not None:
        from graphkit.conversion import convert

        say.step(f"converting to {other}")
        try:
            variants[other] = convert(base, other, partial=True, copy=True).model
        except GraphkitError as exc:
            report.notes.append(f"no {other} variant: {exc}")
    from graphkit.rules import forms

    order = sorted(variants, key=lambda v: forms().index(v) if v in forms() else len(forms()))

    for name in order:
        # What verify and export compare with: the traced function where it agrees with the
        # eager call, else the eager call (see KerasBackend).
        runner = keras_backend if variants[name] is base else KerasBackend(variants[name])
        say.step(f"checking Keras' traced function ({name})")
        runner.run(data)
        say.step(f"timing Keras ({name}, {runs} runs)")
        med, p90 = time_calls(lambda r=runner: r.run(data), runs, warmup, say)
        report.rows.append(BenchRow(name, f"keras {runner.mode}", med, p90))
        report.notes += runner.notes

    from graphkit.interrupts import temporary_directory
    from graphkit.onnx_export import export_onnx

    with temporary_directory(prefix="graphkit-bench-") as tmp:
        for name in order:
            options = [(name, {})]
            if name == "onehot-dense":
                options.append((f"{name} --fuse-onehot", {"fuse_onehot": True}))
            for label, kwargs in options:
                say.step(f"exporting {label} to ONNX and checking it")
                path = Path(tmp) / f"{label.replace(' ', '_')}.onnx"
                exported = export_onnx(
                    variants[name],
                    path,
                    verify=True,
                    samples=16,
                    seq_len=seq_len,
                    ranges=ranges,
                    **kwargs,
                )
                backend = OnnxBackend(path, provider=provider)
                say.step(f"timing onnxruntime ({label}, {runs} runs)")
                med, p90 = time_calls(lambda b=backend: b.run(data), runs, warmup, say)
                report.rows.append(
                    BenchRow(label, f"onnxruntime {provider}", med, p90, exported.nodes)
                )
    return report
