"""verify's inputs: signatures checked, batches synthesized, files loaded and validated."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from graphkit.backends.base import Backend, InputSpec
from graphkit.errors import GraphkitError, one_line


def check_signatures(ref: Backend, cand: Backend) -> list[InputSpec]:
    """Both models must take the same inputs; return the merged specs (tightest range)."""
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
        merged.append(
            _merged_spec(
                spec, other, tuple(shape), keras_first=ref.kind == "keras" or cand.kind != "keras"
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


def _merged_spec(ref: InputSpec, cand: InputSpec, shape: tuple, keras_first: bool) -> InputSpec:
    """One input as both models see it: where both read it as indices, the tighter range;
    the tables named as the Keras side names them; a role either side knows."""
    import dataclasses

    first, second = (ref, cand) if keras_first else (cand, ref)
    if first.role is None:
        first, second = second, first
    out = dataclasses.replace(first, name=ref.name, shape=shape, dtype=ref.dtype)
    if first.is_index and second.is_index:
        out.vocab = min(first.vocab, second.vocab)
        out.low = max(first.low, second.low)
        out.mask_zero = first.mask_zero or second.mask_zero
        out.tables = first.tables or second.tables
    if out.role is None and (first.note or second.note):
        out.note = first.note or second.note
    return out


def _kind(dtype: str) -> str:
    if "int" in dtype:
        return "int"
    if "float" in dtype:
        return "float"
    return dtype


# Synthesized samples grow until every row of every table an input reads is covered, up to
# this many samples (or ``samples`` where that is more); beyond it the report says how many
# rows were covered.
COVER_LIMIT = 8192


def _index_span(spec: InputSpec) -> tuple[int, int]:
    """The values the cover runs over: ``low .. vocab - 1``, without the padding index 0
    where it is masked (padding reaches row 0)."""
    low = spec.low
    if spec.mask_zero and low == 0 and spec.vocab > 1:
        low = 1
    return low, spec.vocab


def _positions(spec: InputSpec, seq_len: int, masked: bool = False) -> int:
    """Values per sample that the cover can use (at least half the length where padded)."""
    dims = [d if d is not None else seq_len for d in spec.shape[1:]]
    if masked and dims and dims[0] > 1:
        dims[0] = dims[0] - dims[0] // 2
    return int(np.prod(dims)) if dims else 1


def cover_samples(specs: list[InputSpec], samples: int, seq_len: int) -> int:
    """How many samples reach every table row (every lookup value) at least once: ``samples``
    or more, up to ``max(samples, COVER_LIMIT)``."""
    need = samples
    for spec in specs:
        if spec.is_index:
            low, high = _index_span(spec)
            span = high - low
        elif spec.is_lookup:
            span = len(spec.values or ()) + len(_unseen_values(spec))
        else:
            continue
        per_sample = _positions(spec, seq_len, masked=spec.mask_zero)
        need = max(need, -(-span // max(1, per_sample)))
    return min(need, max(samples, COVER_LIMIT))


def _unseen_values(spec: InputSpec) -> list:
    """Values a lookup has not seen (valid: they go to its out-of-vocabulary index)."""
    if spec.note:  # no out-of-vocabulary index: unknown values would fail
        return []
    if spec.dtype == "string":
        known = set(spec.values or ())
        return [v for v in ("", "[graphkit-unseen]", "UNSEEN token") if v not in known]
    known = {int(v) for v in spec.values or ()}
    info = np.iinfo(spec.dtype)
    top = max(known, default=0)
    candidates = [-3, -1, 0, 5, top + 1, min(top + 1000, int(info.max)), int(info.max)]
    return list(dict.fromkeys(v for v in candidates if v not in known and info.min <= v))


class _Cover:
    """A shuffled cover of an input's values, handed out batch by batch before any random
    value: every row of the tables the input reads is used at least once (when there are
    enough samples)."""

    def __init__(self, values: np.ndarray):
        self.values, self.used = values, 0

    def place(self, x: np.ndarray, keep: np.ndarray | None) -> None:
        left = len(self.values) - self.used
        if left <= 0:
            return
        flat = x.reshape(-1)
        slots = np.flatnonzero(keep.reshape(-1)) if keep is not None else np.arange(flat.size)
        k = min(left, slots.size)
        flat[slots[:k]] = self.values[self.used : self.used + k]
        self.used += k


def synthesize(
    specs: list[InputSpec], samples: int, batch_size: int, seq_len: int, seed: int
) -> Iterator[dict[str, np.ndarray]]:
    """Reproducible batches: index inputs cover every table row before any random value (see
    ``cover_samples``), with 0-padding at the end where masked; lookup inputs their
    vocabulary and unseen values; padding masks ones then a zero tail; features random."""
    for spec in specs:
        if spec.is_index and _index_span(spec)[1] <= _index_span(spec)[0]:
            tables = ", ".join(f"{t.table} ({t.rows} rows)" for t in spec.tables) or "its table"
            raise GraphkitError(
                f"input {spec.name!r}: no index is valid: it reads {tables[:200]}, "
                f"indices in [{spec.low}, {spec.vocab})"
            )
        if _kind(spec.dtype) not in ("int", "float", "bool") and not (
            spec.is_lookup and spec.dtype == "string"
        ):
            head = f"input {spec.name!r}: cannot synthesize {spec.dtype} inputs"
            raise GraphkitError(
                f"{head}; pass inputs=FILE.npz (or a dict of arrays)",
                cli=f"{head}; pass --inputs FILE.npz",
            )
        if _kind(spec.dtype) == "int" and not (
            spec.is_index or spec.is_lookup or spec.role in ("mask", "positions")
        ):
            why = f" ({spec.note})" if spec.note else ""
            head = f"input {spec.name!r}: graphkit cannot tell which integers are valid{why}"
            raise GraphkitError(
                f"{head}; pass ranges={{{spec.name!r}: (LOW, HIGH)}} or inputs=FILE.npz",
                cli=f"{head}; pass --range {spec.name}=LOW:HIGH or --inputs FILE.npz",
            )
    plan = batch_plan(specs, samples, batch_size, seq_len)
    _check_batch_bytes(specs, max(plan, default=0), seq_len)
    rng = np.random.default_rng(seed)
    covers: dict[str, _Cover] = {}
    for spec in specs:
        if spec.is_index:
            low, high = _index_span(spec)
            total = samples * _positions(spec, seq_len, masked=spec.mask_zero)
            if high - low <= total:
                values = rng.permutation(np.arange(low, high, dtype=np.int64))
            else:
                values = low + rng.choice(high - low, size=total, replace=False)
            covers[spec.name] = _Cover(values)
        elif spec.is_lookup:
            pool = list(spec.values or ()) + _unseen_values(spec)
            covers[spec.name] = _Cover(
                np.array(pool)[rng.permutation(len(pool))] if pool else np.array([])
            )
    for n in plan:
        batch = {}
        for spec in specs:
            shape = (n,) + tuple(d if d is not None else seq_len for d in spec.shape[1:])
            if spec.is_index:
                low, high = spec.low, spec.vocab
                if spec.mask_zero and high > 1 and low == 0:
                    low = 1
                x = rng.integers(low, high, size=shape)
                keep = None
                if spec.mask_zero and len(shape) >= 2 and shape[1] > 1:
                    keep = _padding_keep(rng, shape)  # keep >= half of each row
                    x = x * keep
                covers[spec.name].place(x, keep)
                batch[spec.name] = x.astype(spec.dtype)
            elif spec.is_lookup:
                x = _lookup_values(rng, spec, shape)
                covers[spec.name].place(x, None)
                batch[spec.name] = x
            elif spec.role == "positions":
                length = _sequence_length(specs, seq_len)
                batch[spec.name] = rng.integers(0, length, size=shape).astype(spec.dtype)
            elif spec.role == "mask":
                keep = (
                    _padding_keep(rng, shape)
                    if len(shape) >= 2 and shape[1] > 1
                    else np.ones(shape, dtype=bool)
                )
                batch[spec.name] = keep.astype(spec.dtype)
            elif spec.dtype == "bool":
                batch[spec.name] = rng.random(shape) < 0.5
            else:
                batch[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        yield batch


def _check_batch_bytes(specs: list[InputSpec], rows: int, seq_len: int) -> None:
    """Refuse, before anything is drawn, a batch whose arrays would not fit: a model (or a
    hostile file) may declare axes of 2**40; numpy would then fail with a traceback or,
    where the size fits in memory, really allocate it."""
    from graphkit.limits import size_text

    budget = _input_budget()
    total = 0
    for spec in specs:
        shape = (rows,) + tuple(d if d is not None else seq_len for d in spec.shape[1:])
        count = 1
        for d in shape:
            count *= max(int(d), 0)
        itemsize = 8 if spec.dtype == "string" else np.dtype(spec.dtype).itemsize
        total += count * max(itemsize, 8)  # drawn as int64/float64 before the cast
        if total > budget:
            dims = "x".join(str(d) for d in shape)
            head = (
                f"input {spec.name!r}: a synthesized batch of {dims} {spec.dtype} takes "
                f"{size_text(total)}, over the {size_text(budget)} inputs may take "
                "(graphkit.limits.MAX_INPUT_BYTES, or half the memory available)"
            )
            variable = None in spec.shape[1:]
            raise GraphkitError(
                f"{head}; pass your own inputs=FILE.npz"
                + (" or a smaller seq_len" if variable else ""),
                cli=f"{head}; pass your own --inputs FILE.npz"
                + (" or a smaller --seq-len" if variable else ""),
            )


def _sequence_length(specs: list[InputSpec], seq_len: int) -> int:
    """The length of the sequences that ``positions`` inputs point into: the second axis of
    the index inputs (``seq_len`` where it is variable)."""
    lengths = [
        s.shape[1] if s.shape[1] is not None else seq_len
        for s in specs
        if (s.is_index or s.role == "mask") and len(s.shape) >= 2
    ]
    return max(1, min(lengths)) if lengths else max(1, seq_len)


def _padding_keep(rng, shape: tuple) -> np.ndarray:
    """True for the real positions of each row: all but a random tail of under half."""
    n, length = shape[0], shape[1]
    pads = rng.integers(0, length // 2 + 1, size=n) if length > 1 else np.zeros(n, dtype=int)
    steps = np.arange(length)
    keep = steps[None, :] < (length - pads)[:, None]
    keep = keep.reshape(keep.shape + (1,) * (len(shape) - 2))
    return np.broadcast_to(keep, shape).copy()


def _lookup_values(rng, spec: InputSpec, shape: tuple) -> np.ndarray:
    pool = list(spec.values or ()) + _unseen_values(spec)
    if spec.dtype == "string":
        if not pool:
            pool = [f"token{i}" for i in range(50)]
        return np.array(pool)[rng.integers(0, len(pool), size=shape)]
    if not pool:  # Hashing: any integer
        return rng.integers(-1000, 1000, size=shape).astype(spec.dtype)
    return np.array(pool, dtype=np.int64)[rng.integers(0, len(pool), size=shape)].astype(spec.dtype)


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
    """Read ``.npz`` (keyed by input name), ``.npy`` (single input) or a test-data folder
    (``verify --save DIR``, onnxruntime's layout) and check it against ``specs``.

    A file is untrusted: every .npy header is read first, and its shape, dtype and bytes are
    checked against ``graphkit.limits.MAX_INPUT_BYTES``, the available memory and the bytes
    the file or zip member declares, before any array data is read (``_read_npy_file``,
    ``_read_npz``). Pickled/object arrays, encrypted members and compression other than
    stored/deflate are refused in one line.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise GraphkitError(f"{path}: no such file or folder")
    if path.is_dir():
        from graphkit.verification.testdata import read_test_data

        arrays = read_test_data(path, [s.name for s in specs])
        return validate_inputs(arrays, specs, str(path))
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".npy"):
        raise GraphkitError(
            f"{path}: inputs must be a .npz or .npy file, or a folder saved by verify --save"
        )
    import zipfile
    import zlib

    try:
        with _open_regular(path) as f:
            if suffix == ".npy":
                if len(specs) != 1:
                    raise GraphkitError(
                        f"{path}: a .npy holds one array but the model has {len(specs)} inputs "
                        f"({', '.join(s.name for s in specs)}); use a .npz keyed by input name"
                    )
                size = os.fstat(f.fileno()).st_size
                arrays = {specs[0].name: _read_npy(f, size, f"{path}", _input_budget())}
            else:
                arrays = _read_npz(f, path)
    except GraphkitError:
        raise
    except NotImplementedError as exc:  # zipfile: a zip version or feature it lacks
        raise GraphkitError(
            f"{path}: unsupported .npz (zip) feature: {one_line(exc, with_type=False)[:120]}"
        ) from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        # numpy reports random bytes as "pickled data": say what it is in a user's words
        raise GraphkitError(
            f"{path}: not a readable .npy/.npz file ({one_line(exc, with_type=False)[:200]})"
        ) from exc
    return validate_inputs(arrays, specs, str(path))


def _open_regular(path: Path):
    """``path`` opened for reading, refused unless it is a regular file (checked on the open
    descriptor; a FIFO opened without O_NONBLOCK would wait for a writer)."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise GraphkitError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise GraphkitError(f"{path}: cannot read it ({reason})") from None
    f = os.fdopen(fd, "rb")
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        f.close()
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise GraphkitError(f"{path}: {kind}, not a .npz/.npy file")
    return f


def _input_budget() -> int:
    """Bytes the arrays of one inputs file may take: the limit, or the memory available now
    if that is less (half of it: validation may copy each array once)."""
    from graphkit.limits import MAX_INPUT_BYTES

    budget = MAX_INPUT_BYTES
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    budget = min(budget, int(line.split()[1]) * 1024 // 2)
                    break
    except (OSError, ValueError, IndexError):
        pass
    return budget


def _read_npy(f, available: int, where: str, budget: int) -> np.ndarray:
    """One .npy array from ``f``: the header is read and checked (a plain dtype, no objects,
    its bytes within ``budget`` and within the ``available`` bytes that follow it in the file
    or member) before the data is read."""
    import tokenize

    from numpy.lib import format as npy

    start = f.tell()
    version = npy.read_magic(f)
    if version not in ((1, 0), (2, 0)):
        raise GraphkitError(f"{where}: .npy format version {version} is not supported")
    read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
    try:  # numpy tokenizes and literal_evals the header (at most 10000 bytes)
        shape, fortran, dtype = read_header(f)
    except (ValueError, SyntaxError, TypeError, tokenize.TokenError, RecursionError) as exc:
        raise GraphkitError(
            f"{where}: not a valid .npy header ({one_line(exc, with_type=False)[:120]})"
        ) from None
    if dtype.hasobject or dtype.kind not in "biufUS" or dtype.fields is not None:
        why = (
            "object arrays are pickled data"
            if dtype.hasobject
            else "structured arrays have fields"
            if dtype.fields is not None
            else f"{dtype.name} values are no model's input"
        )
        raise GraphkitError(
            f"{where}: arrays of dtype {str(dtype)[:60]} are refused ({why}; graphkit reads "
            "integers, floats, booleans and strings)"
        )
    if any(d < 0 for d in shape):
        raise GraphkitError(f"{where}: its header declares a negative dimension {tuple(shape)}")
    count = 1
    for d in shape:
        count *= int(d)
    nbytes = count * dtype.itemsize
    if nbytes > budget:
        from graphkit.limits import MAX_INPUT_BYTES

        raise GraphkitError(
            f"{where}: its header declares shape {tuple(shape)} of {dtype} ({nbytes} bytes), over "
            f"the {budget}-byte limit on inputs (graphkit.limits.MAX_INPUT_BYTES = "
            f"{MAX_INPUT_BYTES}, or half the available memory)"
        )
    left = available - (f.tell() - start)
    if nbytes > left:
        raise GraphkitError(
            f"{where}: truncated: its header declares {nbytes} bytes of data, {max(left, 0)} follow"
        )
    data = bytearray(nbytes)  # filled in slices: no second copy of a big array
    view, done = memoryview(data), 0
    while done < nbytes:
        chunk = f.read(min(nbytes - done, 16 << 20))
        if not chunk:
            raise GraphkitError(f"{where}: truncated: {nbytes} bytes declared, {done} read")
        view[done : done + len(chunk)] = chunk
        done += len(chunk)
    array = np.frombuffer(data, dtype=dtype, count=count)
    return array.reshape(shape[::-1]).transpose() if fortran else array.reshape(shape)


def _read_npz(f, path: Path) -> dict[str, np.ndarray]:
    """The arrays of a .npz, keyed like ``np.load`` does (member name without ``.npy``).

    Every member is checked from the central directory (not encrypted, stored or deflated,
    declared size within the budget) before one byte is inflated; zipfile stops inflating a
    member at its declared size, and each header is checked against it (``_read_npy``).
    """
    import zipfile

    from graphkit.limits import MAX_INFLATION_FLOOR_BYTES, MAX_INFLATION_RATIO, MAX_NPZ_MEMBERS

    budget = _input_budget()
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(f) as archive:
        members = archive.infolist()
        if len(members) > MAX_NPZ_MEMBERS:
            raise GraphkitError(
                f"{path}: {len(members)} members, over the limit of {MAX_NPZ_MEMBERS} "
                "(graphkit.limits.MAX_NPZ_MEMBERS)"
            )
        declared = 0
        for info in members:
            where = f"{path}: member {info.filename[:80]!r}"
            if info.is_dir():
                continue
            if info.flag_bits & 0x1:
                raise GraphkitError(f"{where} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise GraphkitError(
                    f"{where}: compression method {info.compress_type} is not supported "
                    "(graphkit reads stored and deflated members, as numpy writes them)"
                )
            if not info.filename.endswith(".npy"):
                raise GraphkitError(f"{where} is not a .npy array")
            if (
                info.file_size > MAX_INFLATION_FLOOR_BYTES
                and info.file_size > MAX_INFLATION_RATIO * max(info.compress_size, 1)
            ):
                raise GraphkitError(
                    f"{where}: declares {info.file_size} bytes from {info.compress_size} "
                    f"compressed, over {MAX_INFLATION_RATIO}:1 "
                    "(graphkit.limits.MAX_INFLATION_RATIO: a few MB must not become gigabytes)"
                )
            declared += info.file_size
            if declared > budget + 1024 * len(members):  # headers are at most a few KB
                raise GraphkitError(
                    f"{where}: the members declare {declared} bytes, over the {budget}-byte "
                    "limit on inputs (graphkit.limits.MAX_INPUT_BYTES, or half the available "
                    "memory)"
                )
        for info in members:
            if info.is_dir():
                continue
            where = f"{path}: member {info.filename[:80]!r}"
            name = info.filename[: -len(".npy")]
            if name in arrays:
                raise GraphkitError(f"{where} appears twice")
            with archive.open(info) as member:
                arrays[name] = _read_npy(member, info.file_size, where, budget)
                budget -= arrays[name].nbytes
    return arrays


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
        if spec.is_index and x.dtype.kind == "b":  # True/False would read rows 1 and 0
            raise GraphkitError(f"{label}: dtype bool, the model expects indices ({spec.dtype})")
        if spec.is_index:
            if x.dtype.kind == "f":
                if np.isnan(x).any():
                    pos = tuple(int(i) for i in np.argwhere(np.isnan(x))[0])
                    raise GraphkitError(f"{label}: NaN index at {pos}")
                if np.any(x != np.trunc(x)):
                    pos = tuple(int(i) for i in np.argwhere(x != np.trunc(x))[0])
                    raise GraphkitError(f"{label}: fractional index {x[pos]} at {pos}")
            if x.size:
                bad = (x < spec.low) | (x >= spec.vocab)
                if bad.any():
                    pos = tuple(int(i) for i in np.argwhere(bad)[0])
                    kind = "negative" if x[pos] < 0 else "out-of-range"
                    if spec.role == "index":
                        kind = "negative" if x[pos] < 0 else "out-of-vocabulary"
                    raise GraphkitError(
                        f"{label}: {kind} index {x[pos]} at {pos}; valid indices are "
                        f"{spec.low}..{spec.vocab - 1}{_range_source(spec)}"
                    )
        if _kind(spec.dtype) == "int" and x.size:
            info = np.iinfo(spec.dtype)
            if x.min() < info.min or x.max() > info.max:
                raise GraphkitError(f"{label}: values outside the range of {spec.dtype}")
        out[spec.name] = x if spec.dtype == "string" else x.astype(spec.dtype)
    if batch == 0:
        raise GraphkitError(f"{where}: no samples")
    return out


def _range_source(spec: InputSpec) -> str:
    if spec.role == "range":
        return " (--range)"
    if spec.tables:
        names = ", ".join(repr(t.table) for t in spec.tables[:3])
        return f" (the rows of {names})"
    return ""


def batches_of(arrays: dict[str, np.ndarray], batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    n = len(next(iter(arrays.values())))
    for start in range(0, n, batch_size):
        yield {k: v[start : start + batch_size] for k, v in arrays.items()}


def parse_ranges(ranges) -> dict[str, tuple[int, int]]:
    """``ranges`` as ``{name: (low, high)}``: from such a dict, or from ``NAME=LOW:HIGH``
    strings (``--range``; ``NAME=HIGH`` means ``0:HIGH``). Values run from LOW to HIGH - 1."""
    if not ranges:
        return {}
    if isinstance(ranges, dict):
        items = list(ranges.items())
    else:
        items = []
        for text in ranges:
            name, sep, span = str(text).partition("=")
            low, colon, high = span.partition(":")
            if not colon:
                low, high = "0", low
            if not sep or not name:
                raise GraphkitError(f"range {text!r}: expected NAME=LOW:HIGH, e.g. tokens=0:1500")
            items.append((name, (low, high)))
    out: dict[str, tuple[int, int]] = {}
    for name, span in items:
        try:
            low, high = (int(v) for v in span)
        except (TypeError, ValueError):
            raise GraphkitError(
                f"range for {name!r}: expected two integers LOW:HIGH, got {span!r}"
            ) from None
        if high <= low:
            raise GraphkitError(
                f"range for {name!r}: HIGH must be above LOW (values run LOW..HIGH-1), got {low}:{high}"
            )
        if name in out:
            raise GraphkitError(f"range for {name!r} given twice")
        out[name] = (low, high)
    return out


def apply_ranges(specs: list[InputSpec], ranges) -> list[InputSpec]:
    """``specs`` with the user's ranges (``parse_ranges``) applied: role ``"range"``."""
    import dataclasses

    ranges = parse_ranges(ranges)
    names = {s.name for s in specs}
    unknown = sorted(set(ranges) - names)
    if unknown:
        raise GraphkitError(
            f"range for {', '.join(map(repr, unknown))}: the model has no such input "
            f"(inputs: {', '.join(sorted(names))})"
        )
    out = []
    for spec in specs:
        if spec.name in ranges:
            if _kind(spec.dtype) not in ("int", "float"):
                raise GraphkitError(
                    f"range for {spec.name!r}: the input is {spec.dtype}, not a number"
                )
            low, high = ranges[spec.name]
            info = np.iinfo(spec.dtype if _kind(spec.dtype) == "int" else "int64")
            if low < info.min or high - 1 > info.max:
                raise GraphkitError(
                    f"range for {spec.name!r}: {low}:{high} does not fit the input's type "
                    f"({spec.dtype if _kind(spec.dtype) == 'int' else 'whole numbers in int64'}: "
                    f"{info.min}..{info.max})"
                )
            note = None
            if spec.is_index and spec.tables:
                names = ", ".join(repr(t.table) for t in spec.tables[:3])
                note = (
                    f"the given range {low}:{high} replaces {spec.low}:{spec.vocab}, the rows "
                    f"of {names} that the model reads"
                )
                if low < spec.low or high > spec.vocab:  # the model may hash or clip them
                    note += (
                        "; indices past those rows are not valid where the input indexes the "
                        "table directly (Keras' Embedding raises or wraps them, a one-hot "
                        "gives zeros)"
                    )
            spec = dataclasses.replace(spec, low=low, vocab=high, role="range", note=note)
        out.append(spec)
    return out
