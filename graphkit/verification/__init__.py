"""``graphkit.verify``: do two models (Keras or ONNX, either variant) compute the same thing?

Inputs come from a file or are synthesized from the signature; both models run
batch by batch and only running statistics are kept, so memory stays bounded
whatever ``samples`` is.

Default tolerances (``|candidate - reference| <= atol + rtol * |reference|``):

* Keras vs Keras: ``atol = rtol = 1e-6``. Embedding <-> OneHot + Dense is exact by
  construction (the report says ``exact``); the slack only admits the ulp-level rounding
  of folded transcendental activations (tanh, softmax...), and still catches any real change.
* ONNX on either side: ``atol = 1e-5, rtol = 1e-4``: a different runtime rounds
  differently (fused kernels, other summation orders).
* float16/bfloat16 outputs, or ONNX with float16/bfloat16 computations inside (mixed
  precision): at least ``atol = rtol = 1e-3`` (one float16 ulp is ~1e-3).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from graphkit.backends import Backend, open_backend
from graphkit.errors import GraphkitError, one_line
from graphkit.verification.inputs import (
    batch_plan,
    batches_of,
    check_signatures,
    has_variable_axes,
    load_inputs,
    synthesize,
    validate_inputs,
)
from graphkit.verification.report import VerifyReport
from graphkit.verification.stats import OutputStats

__all__ = [
    "OutputStats",
    "VerifyReport",
    "batch_plan",
    "batches_of",
    "check_signatures",
    "default_tolerances",
    "has_variable_axes",
    "load_inputs",
    "synthesize",
    "validate_inputs",
    "verify",
]

KERAS_TOLERANCE = (1e-6, 1e-6)  # (rtol, atol)
ONNX_TOLERANCE = (1e-4, 1e-5)
HALF_TOLERANCE = (1e-3, 1e-3)
DEFAULT_SAMPLES = 256
DEFAULT_BATCH = 32
DEFAULT_SEQ_LEN = 16


def default_tolerances(ref: Backend, cand: Backend) -> tuple[float, float]:
    if "onnx" not in (ref.kind, cand.kind):
        return KERAS_TOLERANCE
    if ref.half_precision or cand.half_precision:
        return HALF_TOLERANCE  # two runtimes rounding float16 intermediates differently
    return ONNX_TOLERANCE


def verify(
    reference: Any,
    candidate: Any,
    inputs: str | os.PathLike | dict[str, np.ndarray] | None = None,
    *,
    samples: int = DEFAULT_SAMPLES,
    batch_size: int = DEFAULT_BATCH,
    seq_len: int = DEFAULT_SEQ_LEN,
    seed: int = 0,
    rtol: float | None = None,
    atol: float | None = None,
    provider: str = "cpu",
    unsafe: bool = False,
    imports=(),
    onehot_lambdas=(),
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Compare ``candidate`` with ``reference`` output by output.

    Each is a path (``.keras``, ``.h5``, ``.onnx``), an in-memory Keras model, or a Backend.
    ``inputs`` is a ``.npz``/``.npy`` path or a dict of arrays; without it, ``samples``
    inputs are synthesized from the signature with ``seed``. Returns a VerifyReport
    (truthy when equivalent); raises GraphkitError for bad usage or bad input.
    """
    for label, value, low in (
        ("samples", samples, 1),
        ("batch_size", batch_size, 1),
        ("seq_len", seq_len, 1),
    ):
        if int(value) < low:
            raise GraphkitError(f"--{label.replace('_', '-')} must be at least {low}, got {value}")
    for label, value in (("rtol", rtol), ("atol", atol)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise GraphkitError(f"--{label} must be a finite number >= 0, got {value}")
    lambdas = _lambdas_per_model((reference, candidate), onehot_lambdas)
    ref = open_backend(
        reference, provider=provider, unsafe=unsafe, imports=imports, onehot_lambdas=lambdas[0]
    )
    cand = open_backend(
        candidate, provider=provider, unsafe=unsafe, imports=imports, onehot_lambdas=lambdas[1]
    )
    specs = check_signatures(ref, cand)

    if inputs is None:
        stream = synthesize(specs, samples, batch_size, seq_len, seed)
        total = samples
        source = f"synthesized (seed {seed})"
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

    hint = ""
    if inputs is None and has_variable_axes(specs):
        hint = (
            f" (variable axes were synthesized with length {seq_len}; "
            "a model that needs longer inputs needs a larger --seq-len)"
        )
    base_rtol, base_atol = default_tolerances(ref, cand)
    stats: dict[str, OutputStats] = {}
    fed: dict[str, tuple[tuple, str]] = {}
    done = 0
    for batch in stream:
        r_out = _named_outputs(ref, batch, "reference", hint)
        c_out = _named_outputs(cand, batch, "candidate", hint)
        if not stats:
            for name in ref.output_names:
                half = str(r_out[name].dtype) in ("float16", "bfloat16")
                o_rtol = (
                    rtol if rtol is not None else max(base_rtol, HALF_TOLERANCE[0] if half else 0.0)
                )
                o_atol = (
                    atol if atol is not None else max(base_atol, HALF_TOLERANCE[1] if half else 0.0)
                )
                stats[name] = OutputStats(name, o_rtol, o_atol)
        for name, s in stats.items():  # paired by name, never by position
            s.update(np.asarray(r_out[name]), np.asarray(c_out[name]), done)
        n = len(next(iter(batch.values())))
        for name, x in batch.items():
            fed[name] = ((done + n,) + tuple(x.shape[1:]), str(x.dtype))
        done += n
        if progress is not None:
            progress(done, total)
    notes = list(dict.fromkeys([*ref.notes, *cand.notes]))  # verify(m, m): once
    for label, adopted in (("reference", lambdas[0]), ("candidate", lambdas[1])):
        if adopted:
            notes.append(
                f"--onehot-lambda: the {label}'s Lambda(s) {', '.join(map(repr, adopted))} ran "
                "as graphkit's OneHot, not as their own code; `--unsafe` (without the flag) "
                "compares with what their code computes"
            )
    if inputs is None:
        first = batch_plan(specs, samples, batch_size, seq_len)[0]
        if first != min(batch_size, samples):
            notes.append(
                f"first batch of {first} samples, not {batch_size}, so that batch size and "
                "sequence length differ (equal, they hide models that mix the two axes up)"
            )
    return VerifyReport(
        str(ref.source),
        str(cand.source),
        done,
        source,
        seed,
        list(stats.values()),
        specs,
        fed,
        notes,
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
        if isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() != ".onnx":
            names = {info.name for info in file_lambdas(source)}
        out.append({k: v for k, v in requested.items() if k in names})
        seen |= names
    missing = sorted(set(requested) - seen)
    if missing:
        raise GraphkitError(
            f"--onehot-lambda: neither model has a Lambda named {', '.join(map(repr, missing))}"
        )
    return out
