"""``graphkit.verify``: do two models (Keras, ONNX or LiteRT, either variant) compute the same thing?

Inputs come from a file or are synthesized from the signature; both models run
batch by batch and only running statistics are kept, so memory stays bounded
whatever ``samples`` is.

Default tolerances (``|candidate - reference| <= atol + rtol * |reference|``):

* Keras vs Keras: ``atol = rtol = 1e-6``. Embedding <-> OneHot + Dense is exact by
  construction (the report says ``exact``); the slack only admits the ulp-level rounding
  of folded transcendental activations (tanh, softmax...), and still catches any real change.
* a compiled runtime (ONNX in onnxruntime, .tflite in LiteRT: ``Backend.compiled_runtime``)
  on either side: earned from the Keras model (``graphkit.verification.tolerance``):
  16 times the float32 model's own rounding error, measured by a float64 run of it on the
  first batch (the first ``EARN_SAMPLES`` samples where that batch is smaller). Where no float64 run can be made (ONNX against ONNX, ONNX against LiteRT,
  LiteRT against LiteRT, mixed precision...): ``atol = 1e-5, rtol = 1e-4``: a different
  runtime rounds differently.
* float16/bfloat16 outputs, or a runtime with float16/bfloat16 computations inside (mixed
  precision): at least ``atol = rtol = 1e-3`` (one float16 ulp is ~1e-3).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from graphkit.backends import Backend, InputSpec, open_backend
from graphkit.errors import GraphkitError, one_line
from graphkit.progress import Progress, as_progress
from graphkit.verification.coverage import CoverageCounter, TableCoverage
from graphkit.verification.inputs import (
    apply_ranges,
    batch_plan,
    batches_of,
    check_signatures,
    cover_samples,
    fixed_batch,
    has_variable_axes,
    load_inputs,
    parse_ranges,
    synthesize,
    validate_inputs,
)
from graphkit.verification.lengths import DEFAULT_SEQ_LEN, LengthChoice, fit_seq_len
from graphkit.verification.report import VerifyReport
from graphkit.verification.stats import OutputStats

__all__ = [
    "DEFAULT_SEQ_LEN",
    "LengthChoice",
    "OutputStats",
    "TableCoverage",
    "VerifyReport",
    "batch_plan",
    "batches_of",
    "check_options",
    "check_signatures",
    "default_tolerances",
    "fit_seq_len",
    "has_variable_axes",
    "load_inputs",
    "parse_ranges",
    "parse_tolerance",
    "apply_ranges",
    "synthesize",
    "validate_inputs",
    "verify",
]

KERAS_TOLERANCE = (1e-6, 1e-6)  # (rtol, atol)
ONNX_TOLERANCE = (1e-4, 1e-5)
RUNTIME_TOLERANCE = ONNX_TOLERANCE  # any compiled runtime (ONNX, LiteRT), not only ONNX
HALF_TOLERANCE = (1e-3, 1e-3)
DEFAULT_SAMPLES = 256
DEFAULT_BATCH = 32
# a tolerance is earned on at least this many samples (the first ones), also where the first
# batch is smaller (a candidate fixed to batch 1: one sample would be a thin basis)
EARN_SAMPLES = 32


def _why_no_length(inputs, ref: Backend, cand: Backend, specs: list[InputSpec]) -> str:
    """Why a given --seq-len went unused: a file's inputs, or axes that are fixed -- in both
    models, or in one of them (a LiteRT file exported with --fixed-shape), which then rules."""
    if inputs is not None:
        return "the inputs came from a file"
    variable = [
        label
        for label, b in (("reference", ref), ("candidate", cand))
        if has_variable_axes(b.inputs)
    ]
    if not variable:
        return "the models have no variable (None) axis"
    shapes = ", ".join(f"{s.name} {'x'.join(str(d) for d in s.shape)}" for s in specs)
    if len(variable) == 2:
        return f"each model fixes the axes the other leaves variable ({shapes})"
    fixed = "candidate" if variable == ["reference"] else "reference"
    return f"the {fixed} takes fixed shapes ({shapes}), which the {variable[0]} takes too"


def _compiled(backend: Backend) -> bool:
    """Is ``backend`` a compiled runtime (onnxruntime, LiteRT) that rounds unlike Keras?"""
    return bool(getattr(backend, "compiled_runtime", False))


_RUNTIME_LABELS = {"onnx": "ONNX", "litert": "LiteRT", "keras": "Keras"}


def default_tolerances(ref: Backend, cand: Backend) -> tuple[float, float]:
    if not (_compiled(ref) or _compiled(cand)):
        return KERAS_TOLERANCE
    if ref.half_precision or cand.half_precision:
        return HALF_TOLERANCE  # two runtimes rounding float16 intermediates differently
    return RUNTIME_TOLERANCE


def verify(
    reference: Any,
    candidate: Any,
    inputs: str | os.PathLike | dict[str, np.ndarray] | None = None,
    *,
    samples: int = DEFAULT_SAMPLES,
    batch_size: int = DEFAULT_BATCH,
    seq_len: int | LengthChoice | None = None,
    seed: int = 0,
    rtol: float | dict[str, float] | None = None,
    atol: float | dict[str, float] | None = None,
    provider: str = "cpu",
    unsafe: bool = False,
    imports=(),
    onehot_lambdas=(),
    ranges=None,
    save: str | os.PathLike | None = None,
    force: bool = False,
    locate: bool = True,
    progress: Callable[[int, int], None] | Progress | None = None,
    shard: str | tuple[int, int] | None = None,
) -> VerifyReport:
    """Compare ``candidate`` with ``reference`` output by output.

    Each is a path (``.keras``, ``.h5``, ``.onnx``, ``.tflite``), an in-memory Keras model,
    or a Backend.
    ``inputs`` is a ``.npz``/``.npy`` path or a dict of arrays; without it, ``samples``
    inputs are synthesized from the signature with ``seed``, variable axes ``seq_len``
    long: None gives 16 where both models take it, else a length they take (found from
    Keras' shape rules or by trying, and noted in the report); a length given is used as
    is, or refused with the cause (see ``graphkit.verification.lengths``). ``progress``: a
    ``graphkit.progress.Progress``, or a function called with (samples done, total).
    ``ranges``: ``{input: (low, high)}`` (or ``NAME=LOW:HIGH`` strings) for integer inputs
    whose valid values graphkit cannot read from the model (see ``parse_ranges``).
    ``save``: a folder to write the inputs, both sides' outputs and the report to, in
    onnxruntime's test-data layout (``force`` replaces an earlier one; see
    ``graphkit.verification.testdata``); ``verify(inputs=that folder)`` replays it.
    ``locate``: when outputs differ, name the first layer where the models part
    (``graphkit.verification.locate``; a few rows of the first differing batch).
    ``shard``: ``"I/N"`` runs only shard I of N of the run's batches; its report (``shard``
    in ``to_dict()``) merges with the others' into the single run's report
    (``graphkit.verification.shards.merge_reports``).

    ``rtol``/``atol``: a number for every output or ``{output: number}``; unset, Keras
    against Keras is held to 1e-6, and a comparison with ONNX or LiteRT to a tolerance earned
    from the Keras model's own float32 error (``graphkit.verification.tolerance``).
    The weights the two models share are compared bit for bit too (``weights``): a copied
    weight that differs fails the verdict even where the sampled outputs agree.

    Synthesized index inputs reach every row of every table they read before any random
    value (more samples than ``samples`` where needed, up to ``COVER_LIMIT``); the report
    counts the rows the inputs reached, whatever their source.
    Returns a VerifyReport (truthy when equivalent); raises GraphkitError for bad usage or
    bad input.
    """
    check_options(samples=samples, batch_size=batch_size, seq_len=seq_len, rtol=rtol, atol=atol)
    from graphkit.verification.shards import parse_shard

    shard = parse_shard(shard)
    if shard is not None and save is not None:
        raise GraphkitError(
            "save= with shard=: save the inputs of a single run",
            cli="--save with --shard: save the inputs of a single run",
        )
    asked = dict(samples=samples, batch_size=batch_size, seq_len=seq_len, seed=seed)
    given_seq_len = None if isinstance(seq_len, LengthChoice) else seq_len  # noted if unused
    report_to = as_progress(progress, callable_is="advance")
    lambdas = _lambdas_per_model((reference, candidate), onehot_lambdas)
    backends = []
    for source, adopted in zip((reference, candidate), lambdas):
        if isinstance(source, (str, os.PathLike)):
            report_to.step(f"loading {source}")
        backends.append(
            open_backend(
                source, provider=provider, unsafe=unsafe, imports=imports, onehot_lambdas=adopted
            )
        )
    ref, cand = backends
    renamed = _name_generic_output(ref, cand)
    specs = apply_ranges(check_signatures(ref, cand), ranges)
    for label, value in (("rtol", rtol), ("atol", atol)):
        unknown = (
            sorted(set(value or {}) - {"*", *ref.output_names}) if isinstance(value, dict) else []
        )
        if unknown:
            names, outputs = ", ".join(map(repr, unknown)), ", ".join(ref.output_names)
            raise GraphkitError(
                f"{label} names {names}: the models have no such output (outputs: {outputs})",
                cli=f"--{label} for {names}: the models have no such output (outputs: {outputs})",
            )
    from graphkit.verification.weights import compare_weights

    report_to.step("comparing the weights")
    weights = compare_weights(ref, cand)
    given_atol = atol.get("*") if isinstance(atol, dict) else atol
    if given_atol:
        weights.allow(float(given_atol))
    batch_size = fixed_batch(specs) or batch_size  # an export with --fixed-shape takes no other
    writer = None
    if save is not None:  # here, so that a bad folder fails before any comparing
        from graphkit.verification.testdata import TestDataWriter

        writer = TestDataWriter(save, [s.name for s in specs], ref.output_names, force=force)

    choice = None
    if inputs is None:
        if isinstance(seq_len, LengthChoice):
            choice = seq_len  # already fitted by the caller (export)
        else:
            report_to.step("checking the input length")
            choice = fit_seq_len(
                [("reference", ref), ("candidate", cand)],
                specs,
                seq_len,
                seed=seed,
                progress=report_to,
            )
        seq_len = choice.length
        total = cover_samples(specs, samples, seq_len)
        stream = synthesize(specs, total, batch_size, seq_len, seed)
        source = f"synthesized (seed {seed})"
        first_args = (specs, total, batch_size, seq_len, seed)

        def earn_from():  # the stream's first samples again (it is reproducible)
            return _first_samples(synthesize(*first_args), EARN_SAMPLES)
    else:
        if isinstance(inputs, dict):
            arrays = validate_inputs(inputs, specs)
            source = "given arrays"
        else:
            arrays = load_inputs(inputs, specs)
            source = f"from {inputs}"
        total = len(next(iter(arrays.values())))
        stream = batches_of(arrays, batch_size)
        seed = None

        def earn_from():
            return {k: v[:EARN_SAMPLES] for k, v in arrays.items()}

    if inputs is None:
        sizes = batch_plan(specs, total, batch_size, seq_len)
    else:
        sizes = [min(batch_size, total - start) for start in range(0, total, batch_size)]
    start_batch, stop_batch = shard.batches(len(sizes)) if shard else (0, len(sizes))
    offset = sum(sizes[:start_batch])  # the global index of this run's first sample
    hint = ""
    if shard is None:
        report_to.step(f"comparing {total} samples")
    else:
        count = sum(sizes[start_batch:stop_batch])
        report_to.step(f"comparing shard {shard}: {count} of {total} samples")
    if inputs is None and has_variable_axes(specs):
        hint = (
            f" (variable axes were synthesized with length {seq_len}; "
            "a model that needs longer inputs needs a larger --seq-len)"
        )
    notes_early: list[str] = []
    stats: dict[str, OutputStats] = {}
    coverage = CoverageCounter(specs)
    fed: dict[str, tuple[tuple, str]] = {}
    values: dict[str, tuple] = {}  # the data's own range per input: (min, max)
    divergence = None
    done = offset
    for i, batch in enumerate(stream):
        if not start_batch <= i < stop_batch:  # another shard's batch: not run, except
            if not stats:  # the first: every shard earns its tolerances from the same batch
                r_out = _named_outputs(ref, batch, "reference", hint)
                c_out = _named_outputs(cand, batch, "candidate", hint)
                stats = _output_stats(
                    ref, cand, batch, r_out, c_out, rtol, atol, notes_early, earn_from
                )
            if i >= stop_batch:
                break
            continue
        r_out = _named_outputs(ref, batch, "reference", hint)
        c_out = _named_outputs(cand, batch, "candidate", hint)
        if not stats:
            stats = _output_stats(
                ref, cand, batch, r_out, c_out, rtol, atol, notes_early, earn_from
            )
        for name, s in stats.items():  # paired by name, never by position
            s.update(np.asarray(r_out[name]), np.asarray(c_out[name]), done)
        if locate and divergence is None and not all(s.ok for s in stats.values()):
            report_to.step("locating the first layer that differs")
            divergence = _locate(ref, cand, batch, stats, r_out, c_out)
        coverage.update(batch)
        if writer is not None:
            writer.add(batch, r_out, c_out)  # in memory, up to its caps
        n = len(next(iter(batch.values())))
        for name, x in batch.items():
            fed[name] = ((done + n,) + tuple(x.shape[1:]), str(x.dtype))
            _widen(values, name, x)
        done += n
        report_to.advance(done - offset, total if shard is None else count)
    notes = list(dict.fromkeys([*ref.notes, *cand.notes, *notes_early]))  # verify(m, m): once
    notes += renamed
    notes += [f"input {s.name!r}: {s.note}" for s in specs if s.role == "range" and s.note]
    if choice is not None and choice.note and has_variable_axes(specs):
        notes.append(choice.note)
    if given_seq_len is not None and (inputs is not None or not has_variable_axes(specs)):
        notes.append(f"--seq-len {given_seq_len} not used: " + _why_no_length(inputs, ref, cand, specs))  # fmt: skip
    for label, adopted in (("reference", lambdas[0]), ("candidate", lambdas[1])):
        if adopted:
            notes.append(
                f"--onehot-lambda: the {label}'s Lambda(s) {', '.join(map(repr, adopted))} ran "
                "as graphkit's OneHot, not as their own code; `--unsafe` (without the flag) "
                "compares with what their code computes"
            )
    if inputs is None and total > samples:
        notes.append(f"synthesized {total} samples, not {samples}, so that every table row is read")
    flow = getattr(ref, "dataflow", None) or getattr(cand, "dataflow", None)
    if getattr(flow, "unreached", None):
        notes.append(
            f"table(s) {', '.join(map(repr, flow.unreached))} read through positions or "
            "constants, not through an input: no input's range comes from them"
        )
    if inputs is None:
        first = batch_plan(specs, total, batch_size, seq_len)[0]
        if first != min(batch_size, total):
            notes.append(
                f"first batch of {first} samples, not {batch_size}, so that batch size and "
                "sequence length differ (equal, they hide models that mix the two axes up)"
            )
    report = VerifyReport(
        str(ref.source),
        str(cand.source),
        done - offset,
        source,
        seed,
        list(stats.values()),
        specs,
        fed,
        notes,
        seq_len=seq_len if inputs is None and has_variable_axes(specs) else None,
        coverage=coverage.result(),
        values=values,
        divergence=divergence,
        weights=weights,
    )
    if shard is not None:
        report.shard = _shard_state(
            shard, (start_batch, stop_batch), offset, sizes, specs, stats, coverage,
            dict(asked, reference=_identity(reference), candidate=_identity(candidate),
                 inputs=_identity(inputs), seq_len_used=report.seq_len, rtol=rtol, atol=atol,
                 ranges=str(ranges), locate=locate, provider=provider,
                 onehot_lambdas=[sorted(map(str, x.items())) for x in lambdas], imports=list(imports)),
        )  # fmt: skip
    if writer is not None:
        saved = writer.close(report.to_dict())  # one rename: all or nothing
        report.notes += [saved.note(), *saved.notes]
    return report


def _name_generic_output(ref: Backend, cand: Backend) -> list[str]:
    """A .tflite file whose one output is TensorFlow's generic ``output_0`` (Keras' own
    ``model.export(format="litert")``) against a model with one named output: the same
    output, named as the other model names it. With several outputs, nothing says which
    is which, and the names stay (check_signatures refuses them)."""
    for side, other in ((cand, ref), (ref, cand)):
        take = getattr(side, "take_output_names", None)
        if (
            take is not None
            and getattr(side, "generic_output_names", False)
            and len(side.output_names) == 1 == len(other.output_names)
            and not getattr(other, "generic_output_names", False)
            and side.output_names != other.output_names
        ):
            take(list(other.output_names))
            return [
                f"{side.source}: its one output {'output_0'!r} (TensorFlow's name for a "
                f"function's output) is compared as {other.output_names[0]!r}"
            ]
    return []


def _identity(source) -> Any:
    """A model or inputs as a shard's fingerprint sees them."""
    from graphkit.verification.shards import arrays_identity, file_identity

    if source is None:
        return None
    if isinstance(source, (str, os.PathLike)):
        return file_identity(source)
    if isinstance(source, dict):
        return arrays_identity(source)
    return f"{type(source).__name__} {getattr(source, 'name', '')}"  # in memory: by name


def _shard_state(shard, batches, offset, sizes, specs, stats, coverage, parameters):
    """What a shard's report carries so that it merges (``graphkit.verification.shards``)."""
    from graphkit.verification.shards import ShardState, fingerprint, spec_state, stats_state

    return ShardState(
        shard,
        batches,
        offset,
        len(sizes),
        sum(sizes),
        fingerprint(dict(parameters, shards=shard.count)),
        [stats_state(s) for s in stats.values()],
        coverage.state(),
        [spec_state(s) for s in specs],
    )


def _widen(values: dict[str, tuple], name: str, x) -> None:
    """Widen ``values[name]`` (min, max) to cover the numbers in ``x`` (strings: none)."""
    x = np.asarray(x)
    if not x.size or x.dtype.kind not in "biuf":
        return
    lo, hi = x.min().item(), x.max().item()
    if name in values:
        lo, hi = min(lo, values[name][0]), max(hi, values[name][1])
    values[name] = (lo, hi)


def _per_output(value, name: str, label: str):
    """``value`` for output ``name``: a number for every output, or ``{output: number}``."""
    if isinstance(value, dict):
        return value.get(name, value.get("*"))
    return value


def _first_samples(stream, count: int) -> dict[str, np.ndarray]:
    """The first ``count`` samples of a stream of batches, as one batch."""
    parts: list[dict] = []
    for batch in stream:
        parts.append(batch)
        if sum(len(next(iter(b.values()))) for b in parts) >= count:
            break
    return {k: np.concatenate([b[k] for b in parts])[:count] for k in parts[0]}


def _earn_batch(keras_backend, batch, outputs, earn_from):
    """``(batch, outputs)`` to earn tolerances on: the first batch, or the first
    ``EARN_SAMPLES`` samples where the first batch is smaller and the Keras model takes any
    batch size (its outputs on them run now). Falls back to the first batch on any failure."""
    size = len(next(iter(batch.values()))) if batch else 0
    if earn_from is None or size >= EARN_SAMPLES:
        return batch, outputs
    if any(spec.shape and spec.shape[0] is not None for spec in keras_backend.inputs):
        return batch, outputs  # the Keras model itself is fixed to a batch size
    try:
        more = earn_from()
        if len(next(iter(more.values()))) <= size:
            return batch, outputs
        return more, dict(zip(keras_backend.output_names, keras_backend.run(more)))
    except Exception:  # the first batch's basis, as before: the comparison itself decides
        return batch, outputs


def _output_stats(
    ref, cand, batch, r_out, c_out, rtol, atol, notes, earn_from=None
) -> dict[str, OutputStats]:
    """Each output's statistics with its tolerance: given (``rtol``/``atol``, per output or
    for all), else earned from the model where a compiled runtime (ONNX, LiteRT) is involved
    (the float32 reference's own error, measured by a float64 run:
    ``graphkit.verification.tolerance``), else fixed."""
    base_rtol, base_atol = default_tolerances(ref, cand)
    earned: dict = {}
    if _compiled(ref) or _compiled(cand):
        keras_side = next(
            ((b, out) for b, out in ((ref, r_out), (cand, c_out)) if b.kind == "keras"), None
        )
        wanted = [
            n
            for n in ref.output_names
            if _per_output(rtol, n, "rtol") is None or _per_output(atol, n, "atol") is None
        ]
        if wanted and keras_side is None:
            labels = [_RUNTIME_LABELS.get(b.kind, b.kind) for b in (ref, cand)]
            notes.append(
                f"{labels[0]} against {labels[1]}: fixed tolerances rtol={base_rtol:g} "
                f"atol={base_atol:g} (a tolerance is earned from a float64 run of a Keras model)"
            )
        elif wanted and (ref.half_precision or cand.half_precision):
            notes.append(
                "float16 computation (mixed precision): no float64 run of the Keras model to "
                f"earn a tolerance from; fixed tolerances rtol={base_rtol:g} atol={base_atol:g} "
                "(two runtimes round float16 intermediates differently)"
            )
        elif wanted:
            from graphkit.verification.tolerance import earn_tolerances

            data, outputs = _earn_batch(keras_side[0], batch, keras_side[1], earn_from)
            got = earn_tolerances(keras_side[0], data, outputs)
            if isinstance(got, str):
                notes.append(
                    f"no float64 run of the Keras model ({got}): fixed tolerances "
                    f"rtol={base_rtol:g} atol={base_atol:g}"
                )
            else:
                earned = got
    stats = {}
    for name in ref.output_names:
        half = str(r_out[name].dtype) in ("float16", "bfloat16")
        o_rtol, o_atol = _per_output(rtol, name, "rtol"), _per_output(atol, name, "atol")
        given = [x for x, v in (("rtol", o_rtol), ("atol", o_atol)) if v is not None]
        if name in earned and not half:
            source = earned[name].source
            o_rtol = o_rtol if o_rtol is not None else earned[name].rtol
            o_atol = o_atol if o_atol is not None else earned[name].atol
        else:
            source = "fixed default" + (
                " (float16 output)"
                if half
                else " (float16 computation)"
                if (ref.half_precision or cand.half_precision) and base_rtol == HALF_TOLERANCE[0]
                else ""
            )
            if o_rtol is None:
                o_rtol = max(base_rtol, HALF_TOLERANCE[0] if half else 0.0)
            if o_atol is None:
                o_atol = max(base_atol, HALF_TOLERANCE[1] if half else 0.0)
        if given:
            source = f"{' and '.join(given)} given" + (f"; {source}" if len(given) < 2 else "")
        stats[name] = OutputStats(name, o_rtol, o_atol, tolerance_from=source)
    return stats


def _locate(ref: Backend, cand: Backend, batch, stats: dict[str, OutputStats], r_out, c_out):
    """Where the models part, on a few rows of ``batch``: the first 8 and those with this
    batch's worst errors (this batch's own: a shard of the run picks the same rows)."""
    from graphkit.verification.locate import locate

    n = len(next(iter(batch.values())))
    worst = set()
    for s in stats.values():
        if not s.ok:
            here = OutputStats(s.name, s.rtol, s.atol)
            here.update(np.asarray(r_out[s.name]), np.asarray(c_out[s.name]), 0)
            if here.worst_index:
                worst.add(here.worst_index[0])
    rows = sorted(worst | set(range(min(8, n))))
    loosest = [s for s in stats.values() if not s.ok] or list(stats.values())
    rtol = max(s.rtol for s in loosest)
    atol = max(s.atol for s in loosest)
    return locate(ref, cand, {k: v[rows] for k, v in batch.items()}, rtol, atol)


def parse_tolerance(values, label: str = "atol") -> float | dict[str, float] | None:
    """``--atol 1e-4`` (every output) and ``--atol out:1e-4`` (one output), repeatable, as
    verify's ``atol=``: a number, or ``{output: number}`` (``"*"`` for the rest)."""
    if values is None or isinstance(values, (int, float, dict)):
        return values
    out: dict[str, float] = {}
    for text in values:
        name, sep, number = str(text).rpartition(":")
        key = name if sep else "*"
        if sep and not name:
            raise GraphkitError(f"--{label} {text!r}: expected NUMBER or OUTPUT:NUMBER")
        try:
            value = float(number)
        except ValueError:
            raise GraphkitError(
                f"--{label} {text!r}: expected NUMBER or OUTPUT:NUMBER, e.g. 1e-5 or out:1e-5"
            ) from None
        if key in out:
            raise GraphkitError(
                f"--{label} given twice for {'every output' if key == '*' else key!r}"
            )
        out[key] = value
    if not out:
        return None
    return out["*"] if set(out) == {"*"} else out


def check_options(
    *,
    samples: int = 1,
    batch_size: int = 1,
    seq_len: int | LengthChoice | None = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    """verify's numeric options; cheap (the CLI checks them before importing TensorFlow)."""
    length = seq_len.length if isinstance(seq_len, LengthChoice) else seq_len
    if length is not None and batch_size is not None and int(length) > 0 < int(batch_size):
        from graphkit.limits import MAX_INPUT_BYTES

        values = int(length) * int(batch_size)
        if values * 8 > MAX_INPUT_BYTES:  # one batch of one input, int64 or float64
            raise GraphkitError(
                f"seq_len={length} x batch_size={batch_size} is {values} values per input "
                f"batch, over graphkit.limits.MAX_INPUT_BYTES ({MAX_INPUT_BYTES} bytes)",
                cli=f"--seq-len {length} x --batch-size {batch_size} is {values} values per "
                f"input batch, over graphkit.limits.MAX_INPUT_BYTES ({MAX_INPUT_BYTES} bytes)",
            )
    for label, value in (("samples", samples), ("batch_size", batch_size), ("seq_len", length)):
        if value is not None and int(value) < 1:
            raise GraphkitError(
                f"{label} must be at least 1, got {value}",
                cli=f"--{label.replace('_', '-')} must be at least 1, got {value}",
            )
    for label, value in (("rtol", rtol), ("atol", atol)):
        values = value.items() if isinstance(value, dict) else [(None, value)]
        for output, v in values:
            if v is None:
                continue
            where = f" (output {output!r})" if output not in (None, "*") else ""
            try:
                ok = math.isfinite(float(v)) and float(v) >= 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise GraphkitError(
                    f"{label} must be a finite number >= 0, got {v!r}{where}",
                    cli=f"--{label} must be a finite number >= 0, got {v!r}{where}",
                )


def _named_outputs(backend: Backend, batch, role: str, hint: str) -> dict[str, np.ndarray]:
    """Run one batch; output name -> array. A framework error becomes one line with its cause."""
    try:
        return dict(zip(backend.output_names, backend.run(batch)))
    except GraphkitError:
        raise
    except Exception as exc:
        raise GraphkitError(f"the {role} failed to run: {one_line(exc)}{hint}") from exc


def _lambdas_per_model(sources, onehot_lambdas) -> list[dict]:
    """Split ``--onehot-lambda`` between the two models: each gets the names it holds."""
    from graphkit.lambdas.adopt import file_lambdas, parse_requests

    requested = parse_requests(onehot_lambdas)
    if not requested:
        return [{} for _ in sources]
    out, seen = [], set()
    for source in sources:
        names = set()
        if isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() not in (
            ".onnx",
            ".tflite",
        ):
            names = {info.name for info in file_lambdas(source)}
        out.append({k: v for k, v in requested.items() if k in names})
        seen |= names
    missing = sorted(set(requested) - seen)
    if missing:
        names = ", ".join(map(repr, missing))
        raise GraphkitError(
            f"onehot_lambdas: neither model has a Lambda named {names}",
            cli=f"--onehot-lambda: neither model has a Lambda named {names}",
        )
    return out
