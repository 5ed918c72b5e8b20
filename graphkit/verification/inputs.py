"""verify's inputs: signatures checked, batches synthesized, files loaded and validated."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from graphkit.backends import Backend, InputSpec
from graphkit.errors import GraphkitError


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


def has_variable_axes(specs: list[InputSpec]) -> bool:
    """Does any input have a variable (None) axis besides the batch? (``--seq-len`` sets it.)"""
    return any(d is None for spec in specs for d in spec.shape[1:])


def fixed_batch(specs: list[InputSpec]) -> int | None:
    """The batch size every input is fixed to (``export --fixed-shape``), or None."""
    sizes = {s.shape[0] for s in specs if s.shape and s.shape[0] is not None}
    return sizes.pop() if len(sizes) == 1 else None


def batch_plan(specs: list[InputSpec], samples: int, batch_size: int, seq_len: int) -> list[int]:
    """The size of each synthesized batch.

    A batch exactly as long as the variable axes hides models that mix the batch and time
    axes up (Keras 3.15's TimeDistributed, traced, maps over the batch): when every batch
    would be as long as ``seq_len``, the first one is one sample shorter, so both are seen.
    """
    fixed = fixed_batch(specs)
    if fixed is not None:  # a model made for one batch size takes no other
        return [fixed] * max(1, -(-samples // fixed))
    sizes, left = [], samples
    while left > 0:
        sizes.append(min(batch_size, left))
        left -= sizes[-1]
    if has_variable_axes(specs) and samples > 1 and all(size == seq_len for size in sizes):
        sizes = [seq_len - 1] + sizes[1:] + [1]
    return sizes


def batch_size_apart(batch_size: int, seq_len: int) -> int:
    """``batch_size``, or a nearby size when it equals ``seq_len`` (see ``batch_plan``)."""
    return batch_size if batch_size != seq_len else max(1, batch_size // 2)


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
        if spec.shape and spec.shape[0] is not None and x.shape[0] % spec.shape[0]:
            raise GraphkitError(
                f"{label}: {x.shape[0]} samples, but the model takes batches of exactly "
                f"{spec.shape[0]}: give a multiple of {spec.shape[0]}"
            )
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
