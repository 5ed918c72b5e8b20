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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from graphkit.backends import Backend, InputSpec, open_backend
from graphkit.errors import GraphkitError, one_line

KERAS_TOLERANCE = (1e-6, 1e-6)  # (rtol, atol)
ONNX_TOLERANCE = (1e-4, 1e-5)
HALF_TOLERANCE = (1e-3, 1e-3)
DEFAULT_SAMPLES = 256
DEFAULT_BATCH = 32
DEFAULT_SEQ_LEN = 16


# ---------------------------------------------------------------- signatures


def check_signatures(ref: Backend, cand: Backend) -> list[InputSpec]:
    """Both models must take the same inputs; return the merged specs (tightest vocabulary)."""
    r = {s.name: s for s in ref.inputs}
    c = {s.name: s for s in cand.inputs}
    if set(r) != set(c):
        raise GraphkitError(
            f"input names differ: reference has {sorted(r)}, candidate has {sorted(c)}"
        )
    merged = []
    for spec in ref.inputs:
        other = c[spec.name]
        if len(spec.shape) != len(other.shape):
            raise GraphkitError(
                f"input {spec.name!r}: rank {len(spec.shape)} in the reference, {len(other.shape)} in the candidate"
            )
        if _kind(spec.dtype) != _kind(other.dtype):
            raise GraphkitError(
                f"input {spec.name!r}: dtype {spec.dtype} in the reference, {other.dtype} in the candidate"
            )
        shape = []
        for a, b in zip(spec.shape, other.shape):
            if a is not None and b is not None and a != b:
                raise GraphkitError(
                    f"input {spec.name!r}: shape {spec.shape} in the reference, {other.shape} in the candidate"
                )
            shape.append(a if a is not None else b)
        vocabs = [v for v in (spec.vocab, other.vocab) if v is not None]
        merged.append(
            InputSpec(
                spec.name,
                tuple(shape),
                spec.dtype,
                min(vocabs) if vocabs else None,
                spec.mask_zero or other.mask_zero,
            )
        )
    if sorted(ref.output_names) != sorted(cand.output_names) or len(set(ref.output_names)) != len(
        ref.output_names
    ):
        raise GraphkitError(
            "outputs are matched by name and the names differ: "
            f"reference has {ref.output_names}, candidate has {cand.output_names}"
        )
    return merged


def _kind(dtype: str) -> str:
    if "int" in dtype:
        return "int"
    if "float" in dtype:
        return "float"
    return dtype


# ---------------------------------------------------------------- inputs


def synthesize(
    specs: list[InputSpec], samples: int, batch_size: int, seq_len: int, seed: int
) -> Iterator[dict[str, np.ndarray]]:
    """Reproducible batches: indices inside the vocabulary, 0-padding at the end where masked."""
    for spec in specs:
        if _kind(spec.dtype) not in ("int", "float", "bool"):
            raise GraphkitError(
                f"input {spec.name!r}: cannot synthesize {spec.dtype} inputs; pass --inputs FILE.npz"
            )
    rng = np.random.default_rng(seed)
    for n in batch_plan(specs, samples, batch_size, seq_len):
        batch = {}
        for spec in specs:
            shape = (n,) + tuple(d if d is not None else seq_len for d in spec.shape[1:])
            if spec.is_index:
                low = 1 if spec.mask_zero and spec.vocab > 1 else 0
                x = rng.integers(low, spec.vocab, size=shape)
                if spec.mask_zero and len(shape) >= 2 and shape[1] > 1:
                    pads = rng.integers(0, shape[1], size=n)  # keep >= 1 real token per row
                    steps = np.arange(shape[1])
                    keep = steps[None, :] < (shape[1] - pads)[:, None]
                    x = x * keep.reshape(keep.shape + (1,) * (len(shape) - 2))
                batch[spec.name] = x.astype(spec.dtype)
            elif _kind(spec.dtype) == "int":
                raise GraphkitError(
                    f"input {spec.name!r}: integer input with no Embedding or OneHot to bound it; "
                    "pass --inputs FILE.npz"
                )
            elif spec.dtype == "bool":
                batch[spec.name] = rng.random(shape) < 0.5
            else:
                batch[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        yield batch


def batch_plan(specs: list[InputSpec], samples: int, batch_size: int, seq_len: int) -> list[int]:
    """The size of each synthesized batch.

    A batch exactly as long as the variable axes hides models that mix the batch and time
    axes up (Keras 3.15's TimeDistributed, traced, maps over the batch): when ``batch_size``
    equals ``seq_len`` the first batch is one sample shorter, so both shapes are seen.
    """
    variable = any(d is None for spec in specs for d in spec.shape[1:])
    sizes, left = [], samples
    if variable and batch_size == seq_len and samples > 1:
        first = batch_size - 1 if batch_size > 1 else 1
        sizes.append(min(first, left))
        left -= sizes[-1]
    while left > 0:
        sizes.append(min(batch_size, left))
        left -= sizes[-1]
    return sizes


def load_inputs(path: str | os.PathLike, specs: list[InputSpec]) -> dict[str, np.ndarray]:
    """Read ``.npz`` (keyed by input name) or ``.npy`` (single input) and check it against ``specs``."""
    path = Path(path)
    if not path.is_file():
        raise GraphkitError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".npy"):
        raise GraphkitError(f"{path}: inputs must be a .npz or .npy file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            if len(specs) != 1:
                raise GraphkitError(
                    f"{path}: a .npy holds one array but the model has {len(specs)} inputs "
                    f"({', '.join(s.name for s in specs)}); use a .npz keyed by input name"
                )
            arrays = {specs[0].name: loaded}
        else:
            with loaded:
                arrays = {k: loaded[k] for k in loaded.files}
    except GraphkitError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise GraphkitError(f"{path}: not a readable .npy/.npz file") from exc
    return validate_inputs(arrays, specs, str(path))


def validate_inputs(
    arrays: dict[str, np.ndarray], specs: list[InputSpec], where: str = "inputs"
) -> dict[str, np.ndarray]:
    names = {s.name for s in specs}
    for spec in specs:
        if spec.name not in arrays:
            raise GraphkitError(
                f"{where}: missing input {spec.name!r} (has: {', '.join(sorted(arrays)) or 'nothing'})"
            )
    extra = sorted(set(arrays) - names)
    if extra:
        raise GraphkitError(
            f"{where}: unexpected key(s) {', '.join(map(repr, extra))}; the model takes {', '.join(sorted(names))}"
        )
    out, batch = {}, None
    for spec in specs:
        x = np.asarray(arrays[spec.name])
        label = f"{where}: input {spec.name!r}"
        if spec.dtype == "string":
            if x.dtype.kind not in "US":
                raise GraphkitError(f"{label}: dtype {x.dtype}, the model expects strings")
        elif x.dtype == object or x.dtype.kind not in "biuf":
            raise GraphkitError(f"{label}: dtype {x.dtype} is not numeric")
        if x.ndim != len(spec.shape):
            raise GraphkitError(
                f"{label}: rank {x.ndim} (shape {x.shape}), expected rank {len(spec.shape)} {spec.shape}"
            )
        for axis, (got, want) in enumerate(zip(x.shape, spec.shape)):
            if axis and want is not None and got != want:
                raise GraphkitError(f"{label}: shape {x.shape}, expected {spec.shape}")
        if batch is None:
            batch = x.shape[0]
        elif x.shape[0] != batch:
            raise GraphkitError(f"{label}: {x.shape[0]} samples, other inputs have {batch}")
        if _kind(spec.dtype) == "int" and x.dtype.kind == "f":
            raise GraphkitError(
                f"{label}: dtype {x.dtype}, the model expects integers ({spec.dtype})"
            )
        if spec.is_index:
            if x.dtype.kind == "f":
                if np.isnan(x).any():
                    pos = tuple(int(i) for i in np.argwhere(np.isnan(x))[0])
                    raise GraphkitError(f"{label}: NaN index at {pos}")
                if np.any(x != np.trunc(x)):
                    pos = tuple(int(i) for i in np.argwhere(x != np.trunc(x))[0])
                    raise GraphkitError(f"{label}: fractional index {x[pos]} at {pos}")
            if x.size:
                bad = (x < 0) | (x >= spec.vocab)
                if bad.any():
                    pos = tuple(int(i) for i in np.argwhere(bad)[0])
                    kind = "negative" if x[pos] < 0 else "out-of-vocabulary"
                    raise GraphkitError(
                        f"{label}: {kind} index {x[pos]} at {pos}; valid indices are 0..{spec.vocab - 1}"
                    )
        if _kind(spec.dtype) == "int" and x.size:
            info = np.iinfo(spec.dtype)
            if x.min() < info.min or x.max() > info.max:
                raise GraphkitError(f"{label}: values outside the range of {spec.dtype}")
        out[spec.name] = x if spec.dtype == "string" else x.astype(spec.dtype)
    if batch == 0:
        raise GraphkitError(f"{where}: no samples")
    return out


def batches_of(arrays: dict[str, np.ndarray], batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    n = len(next(iter(arrays.values())))
    for start in range(0, n, batch_size):
        yield {k: v[start : start + batch_size] for k, v in arrays.items()}


# ---------------------------------------------------------------- statistics


@dataclass
class OutputStats:
    """Running comparison of one output; nothing but scalars and the worst element is kept."""

    name: str
    rtol: float
    atol: float
    shape: tuple | None = None
    samples: int = 0
    elements: int = 0
    exceeding: int = 0
    nan_mismatch: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    worst_index: tuple | None = None
    worst_reference: float | None = None
    worst_candidate: float | None = None
    exact: bool = True
    shape_mismatch: str | None = None
    dtype: str = ""

    def update(self, ref: np.ndarray, cand: np.ndarray, offset: int) -> None:
        if ref.shape != cand.shape:
            if self.shape_mismatch is None:
                self.shape_mismatch = f"reference {ref.shape} vs candidate {cand.shape}"
            self.exact = False
            return
        self.dtype = self.dtype or str(ref.dtype)
        self.shape = (self.samples + ref.shape[0],) + tuple(ref.shape[1:]) if ref.ndim else ()
        self.samples += ref.shape[0] if ref.ndim else 1
        self.elements += ref.size
        r = ref.astype("float64")
        c = cand.astype("float64")
        rn, cn = np.isnan(r), np.isnan(c)
        nan_bad = rn != cn
        both_nan = rn & cn
        diff = np.abs(np.where(both_nan, 0.0, r) - np.where(both_nan, 0.0, c))
        diff = np.where(nan_bad, np.inf, diff)
        exceed = (diff > self.atol + self.rtol * np.abs(np.where(rn, 0.0, r))) | nan_bad
        self.exceeding += int(exceed.sum())
        self.nan_mismatch += int(nan_bad.sum())
        if ref.dtype != cand.dtype or not np.array_equal(ref, cand, equal_nan=True):
            self.exact = False
        if diff.size:
            flat = int(np.argmax(diff))
            worst = float(diff.reshape(-1)[flat])
            if worst > self.max_abs or (self.worst_index is None and worst >= self.max_abs):
                idx = np.unravel_index(flat, diff.shape)
                self.max_abs = worst
                self.worst_index = (
                    (int(idx[0]) + offset,) + tuple(int(i) for i in idx[1:]) if diff.ndim else ()
                )
                self.worst_reference = float(r[idx])
                self.worst_candidate = float(c[idx])
            nz = np.abs(r) > 0
            if nz.any():
                rel = float(
                    np.max(np.where(nz & ~nan_bad, diff / np.where(nz, np.abs(r), 1.0), 0.0))
                )
                self.max_rel = max(self.max_rel, rel)

    @property
    def ok(self) -> bool:
        return self.shape_mismatch is None and self.exceeding == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape) if self.shape is not None else None,
            "dtype": self.dtype,
            "max_abs_error": _json_float(self.max_abs),
            "max_rel_error": _json_float(self.max_rel),
            "worst_index": list(self.worst_index) if self.worst_index is not None else None,
            "worst_reference": _json_float(self.worst_reference),
            "worst_candidate": _json_float(self.worst_candidate),
            "elements": self.elements,
            "exceeding": self.exceeding,
            "nan_mismatch": self.nan_mismatch,
            "exact": self.exact,
            "rtol": self.rtol,
            "atol": self.atol,
            "shape_mismatch": self.shape_mismatch,
            "ok": self.ok,
        }


def _json_float(x):
    if x is None:
        return None
    if math.isinf(x):
        return "inf"
    if math.isnan(x):
        return "nan"
    return x


@dataclass
class VerifyReport:
    reference: str
    candidate: str
    samples: int
    input_source: str
    seed: int | None
    outputs: list[OutputStats] = field(default_factory=list)
    inputs: list[InputSpec] = field(default_factory=list)
    # the shapes and dtypes of the data that ran, all batches together: name -> (shape, dtype)
    fed: dict[str, tuple[tuple, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def equivalent(self) -> bool:
        return all(o.ok for o in self.outputs)

    @property
    def exact(self) -> bool:
        return all(o.exact for o in self.outputs)

    def __bool__(self) -> bool:  # `assert graphkit.verify(a, b)` reads naturally in tests
        return self.equivalent

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "candidate": self.candidate,
            "equivalent": self.equivalent,
            "exact": self.exact,
            "samples": self.samples,
            "inputs_from": self.input_source,
            "seed": self.seed,
            "inputs": [
                {
                    "name": s.name,
                    "shape": list(s.shape),
                    "dtype": s.dtype,
                    "vocab": s.vocab,
                    "mask_zero": s.mask_zero,
                }
                for s in self.inputs
            ],
            "fed": {
                name: {"shape": list(shape), "dtype": dtype}
                for name, (shape, dtype) in self.fed.items()
            },
            "outputs": [o.to_dict() for o in self.outputs],
            "notes": self.notes,
        }

    def describe_inputs(self) -> str:
        """``tokens (256, 16) int32 in [0, 50)``: what really ran, one entry per input."""
        parts = []
        for spec in self.inputs:
            shape, dtype = self.fed.get(spec.name, (spec.shape, spec.dtype))
            text = f"{spec.name} {tuple(shape)} {dtype}"
            if spec.vocab:
                text += f" in [0, {spec.vocab})"
            parts.append(text)
        return ", ".join(parts)

    def format(self) -> str:
        lines = [
            f"reference: {self.reference}",
            f"candidate: {self.candidate}",
            f"inputs:    {self.samples} samples, {self.input_source}: {self.describe_inputs()}",
            "",
        ]
        head = [
            "output",
            "shape",
            "max abs err",
            "max rel err",
            "worst at",
            "> tol",
            "tolerance",
            "result",
        ]
        rows = []
        for o in self.outputs:
            if o.shape_mismatch:
                rows.append(
                    [o.name, "-", "-", "-", "-", "-", "-", f"SHAPE MISMATCH: {o.shape_mismatch}"]
                )
                continue
            result = ("exact" if o.exact else "ok") if o.ok else "DIFFERS"
            rows.append(
                [
                    o.name,
                    "x".join(str(d) for d in o.shape) if o.shape else "()",
                    f"{o.max_abs:.3g}",
                    f"{o.max_rel:.3g}",
                    str(tuple(o.worst_index)) if o.worst_index is not None else "-",
                    f"{o.exceeding}/{o.elements}",
                    f"rtol={o.rtol:g} atol={o.atol:g}",
                    result,
                ]
            )
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        for row in [head] + rows:
            lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
        for o in self.outputs:
            if not o.ok and o.worst_index is not None and o.shape_mismatch is None:
                lines.append(
                    f"  {o.name}: worst element {tuple(o.worst_index)}: reference {o.worst_reference!r}, "
                    f"candidate {o.worst_candidate!r}"
                )
        lines += [f"note: {note}" for note in self.notes]
        lines.append("")
        if self.equivalent:
            lines.append("EQUIVALENT" + (" (bit for bit)" if self.exact else " (within tolerance)"))
        else:
            bad = sum(1 for o in self.outputs if not o.ok)
            lines.append(f"NOT EQUIVALENT: {bad} of {len(self.outputs)} output(s) differ")
        return "\n".join(lines)

    def to_junit(self) -> str:
        failures = sum(1 for o in self.outputs if not o.ok)
        name = f"{Path(self.reference).name} vs {Path(self.candidate).name}"
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<testsuites name="graphkit verify" tests="{len(self.outputs)}" failures="{failures}">',
            f'  <testsuite name={quoteattr(name)} tests="{len(self.outputs)}" failures="{failures}">',
        ]
        for o in self.outputs:
            parts.append(
                f'    <testcase classname="graphkit.verification" name={quoteattr(o.name)}>'
            )
            if not o.ok:
                msg = o.shape_mismatch or (
                    f"{o.exceeding} of {o.elements} elements exceed rtol={o.rtol:g} atol={o.atol:g}; "
                    f"max abs error {o.max_abs:.6g} at {tuple(o.worst_index or ())}"
                )
                parts.append(f"      <failure message={quoteattr(msg)}>{escape(msg)}</failure>")
            parts.append(
                f"      <system-out>{escape(f'max_abs={o.max_abs:.6g} max_rel={o.max_rel:.6g} exact={o.exact}')}</system-out>"
            )
            parts.append("    </testcase>")
        parts += ["  </testsuite>", "</testsuites>", ""]
        return "\n".join(parts)


# ---------------------------------------------------------------- the check


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
    ref = open_backend(reference, provider=provider, unsafe=unsafe, imports=imports)
    cand = open_backend(candidate, provider=provider, unsafe=unsafe, imports=imports)
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
    if inputs is None and any(d is None for spec in specs for d in spec.shape[1:]):
        hint = (
            f" (variable axes were synthesized with length {seq_len}; "
            "a model that needs longer inputs needs a larger --seq-len)"
        )
    base_rtol, base_atol = default_tolerances(ref, cand)
    stats: dict[str, OutputStats] = {}
    fed: dict[str, tuple[tuple, str]] = {}
    done = 0
    for batch in stream:
        try:
            r_out = dict(zip(ref.output_names, ref.run(batch)))
        except GraphkitError:
            raise
        except Exception as exc:
            raise GraphkitError(f"the reference failed to run: {one_line(exc)}{hint}") from exc
        try:
            c_out = dict(zip(cand.output_names, cand.run(batch)))
        except GraphkitError:
            raise
        except Exception as exc:
            raise GraphkitError(f"the candidate failed to run: {one_line(exc)}{hint}") from exc
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
    notes = [*ref.notes, *cand.notes]
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
