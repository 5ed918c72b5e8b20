"""Weights compared directly: pair the weights two models share and say, per pair, whether
they are bitwise equal or where they differ.

Sampled outputs can miss a changed row; a weight that should be a copy can be checked
exactly. Pairing, cheapest first (each weight is paired once):

1. by name: Keras <-> Keras by variable path (``variable.path``), or where a rebuilt model
   dropped outer scopes, by a path that is a component-wise suffix of the other
   (``encoder/enc_lstm/lstm_cell/kernel`` <-> ``enc_lstm/lstm_cell/kernel``); ONNX <-> ONNX
   by initializer name. Same shape required.
2. by value, in shape buckets: a cheap fingerprint (a few sampled rows and columns) finds
   candidates; a full comparison in row slices confirms a bitwise-equal partner.
3. a copy with a change: the mutual best partner in its bucket whose sampled values are
   mostly bitwise equal is compared in full and reported where it differs.
4. what a rewrite or pass legitimately changed: a Dense kernel with a bias or activation
   against an Embedding table (``onehot_to_embedding`` folds them), or a fused table with
   its extra out-of-range row (``fuse_onehot``: only its ``valid_rows`` rows are compared)
   holding kernel + bias: listed as "transformed", not compared.

Two float dtypes (a float16 fused table of a mixed-precision model) are compared bitwise in
the narrower one: an exact cast is a copy.

A pair that differs fails the report (``ok`` is False); transformed and unpaired weights do
not. Tables can be gigabytes: values are read in row slices (``SLICE_BYTES`` per side), ONNX
external data through a memory map, Keras variables slice by slice; nothing holds a whole
table's copy.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphkit.errors import one_line

SLICE_BYTES = 32 << 20  # bytes of one side read at a time in a full comparison
SAMPLE_ROWS = 8  # rows of each weight read for its fingerprint
SAMPLE_COLS = 64  # elements of each sampled row kept (evenly spaced)
MOSTLY_EQUAL = 0.5  # share of sampled elements bitwise equal that makes "a copy with a change"
MAX_BUCKET_PAIRS = 20_000  # above this, a shape bucket is not searched pairwise for copies
MAX_TRIES = 3  # full comparisons tried per weight among partners with its fingerprint
MAX_RANGES = 8  # differing row ranges shown before "... (N more)"

STATUSES = ("equal", "differs", "transformed", "unpaired")


@dataclass
class WeightPair:
    """One reference weight and what became of it in the candidate.

    ``status``: "equal" (bitwise), "differs", "transformed" (a rewrite or pass changed it
    legitimately: not compared) or "unpaired" (no partner found: counted, not failed).
    ``paired_by``: "path" (same variable path or initializer name), "rewrite" (an
    Embedding table <-> the Dense kernel a rewrite made of it, or a fold) or "value"
    (shape and values); None when unpaired. ``rows``: the differing rows ("1234",
    "3..7, 9"), elements for 1-D weights (``unit``). ``max_abs``: the largest absolute
    difference, over the compared values.
    """

    reference: str
    candidate: str | None
    shape: tuple[int, ...]
    status: str
    paired_by: str | None = None
    max_abs: float | None = None
    rows: str | None = None
    differing: int = 0  # how many rows (elements for 1-D weights) differ
    unit: str = "rows"
    note: str | None = None

    def describe(self) -> str:
        """One line: ``token_emb/embeddings: rows 1000..1499 differ, max abs 0.5``."""
        name = self.reference
        if self.candidate is not None and self.candidate != self.reference:
            name += f" <-> {self.candidate}"
        if self.status == "differs":
            if self.rows:
                text = f"{name}: {self.unit} {self.rows} differ"
            else:
                text = f"{name}: differs"
            if self.max_abs is not None:
                text += f", max abs {self.max_abs:.3g}"
        elif self.status == "transformed":
            text = f"{name}: transformed, not compared"
        else:
            text = f"{name}: {self.status}"
        return text + (f" ({self.note})" if self.note else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "candidate": self.candidate,
            "shape": list(self.shape),
            "status": self.status,
            "paired_by": self.paired_by,
            "max_abs": self.max_abs,
            "rows": self.rows,
            "differing": self.differing,
            "unit": self.unit,
            "note": self.note,
        }


@dataclass
class WeightsReport:
    """Every reference weight's pair, the candidate weights nothing paired, and notes.

    ``ok`` is False when a pair differs: a weight that should be a copy is not.
    """

    pairs: list[WeightPair] = field(default_factory=list)
    candidate_only: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    compared: bool = True  # False when the weights could not be read at all (see notes)

    def count(self, status: str) -> int:
        return sum(p.status == status for p in self.pairs)

    @property
    def ok(self) -> bool:
        return not any(p.status == "differs" for p in self.pairs)

    @property
    def differing(self) -> list[WeightPair]:
        return [p for p in self.pairs if p.status == "differs"]

    def allow(self, atol: float) -> None:
        """The user's own ``atol`` admits differing weights whose largest change is at most
        ``atol`` (status ``"within"``): who accepts outputs off by 1e-3 accepts such weights."""
        for pair in self.pairs:
            if pair.status == "differs" and pair.max_abs is not None and pair.max_abs <= atol:
                pair.status = "within"

    def summary(self) -> str:
        if not self.compared:
            return "weights: not compared" + (f" ({self.notes[0]})" if self.notes else "")
        text = (
            f"weights: {self.count('equal')} pairs bitwise equal, "
            f"{self.count('transformed')} transformed by the rewrite, "
            f"{self.count('differs')} differ"
        )
        if self.count("within"):
            text += f", {self.count('within')} within the given --atol"
        ref, cand = self.count("unpaired"), len(self.candidate_only)
        if ref or cand:
            text += f"; unpaired: {ref} reference, {cand} candidate"
        return text

    def format_lines(self) -> list[str]:
        """The text report: the summary, then one line per differing or transformed pair."""
        lines = [self.summary()]
        lines += [f"  {p.describe()}" for p in self.pairs if p.status == "differs"]
        lines += [f"  {p.describe()}" for p in self.pairs if p.status == "transformed"]
        lines += [
            f"  {p.describe()} (within the given --atol)"
            for p in self.pairs
            if p.status == "within"
        ]
        lines += [f"  note: {n}" for n in self.notes[(0 if self.compared else 1) :]]
        return lines

    def failures(self) -> list[str]:
        """One line per differing pair (a JUnit failure each)."""
        return [f"weight {p.describe()}" for p in self.differing]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "compared": self.compared,
            "equal": self.count("equal"),
            "transformed": self.count("transformed"),
            "differs": self.count("differs"),
            "unpaired_reference": self.count("unpaired"),
            "unpaired_candidate": len(self.candidate_only),
            "pairs": [p.to_dict() for p in self.pairs],
            "candidate_only": list(self.candidate_only),
            "notes": list(self.notes),
        }


# ----------------------------------------------------------------------------- sources


@dataclass
class _Weight:
    """One weight of one side: its name, shape, how to read row slices, what it is."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    read: Any  # read(begin, end) -> np.ndarray of rows [begin, end) (the whole for a scalar)
    order: int
    role: str | None = None  # "table" (Embedding, fused), "kernel", "bias"
    folds: bool = False  # a Dense kernel whose bias/activation a fold would absorb
    layer: str | None = None  # owning layer's name (Keras)
    bias_of: str | None = None  # for a Dense bias: its kernel's name
    valid_rows: int | None = None  # a fused table: rows that indices address
    identity: int | None = None  # id() of the Keras variable (same variable: equal)
    # the name reports show: a Keras weight's path as inspect prints its layer
    # (``tok_pos/token_emb/embeddings``); pairing by name uses ``name``
    label: str | None = None
    _sample: np.ndarray | None = None
    _digest: bytes | None = None

    @property
    def shown(self) -> str:
        return self.label or self.name

    @property
    def rows(self) -> int:
        """Rows compared: a fused table's valid rows, else the first axis."""
        if not self.shape:
            return 1
        return self.valid_rows if self.valid_rows is not None else self.shape[0]

    @property
    def key(self) -> tuple:
        """The shape compared (a fused table counts its valid rows only)."""
        return (self.rows, *self.shape[1:]) if self.shape else ()

    def sample(self) -> np.ndarray:
        """A few rows (and evenly spaced elements of them), the same positions for every
        weight of the same compared shape: the fingerprint."""
        if self._sample is None:
            rows = _sample_positions(self.rows, SAMPLE_ROWS)
            parts = (
                [_flat(self.read(r, r + 1)) for r in rows]
                if self.shape
                else [_flat(self.read(0, 1))]
            )
            flat = [p[_sample_positions(p.size, SAMPLE_COLS)] for p in parts]
            self._sample = np.concatenate(flat) if flat else np.zeros(0, self.dtype)
            self._digest = hashlib.sha1(_bits(self._sample).tobytes()).digest()
        return self._sample

    @property
    def digest(self) -> bytes:
        self.sample()
        return self._digest


def _flat(a) -> np.ndarray:
    return np.asarray(a).reshape(-1)


def _sample_positions(n: int, k: int) -> np.ndarray:
    if n <= k:
        return np.arange(n)
    spaced = np.linspace(0, n - 1, k // 2).astype(np.int64)
    rng = np.random.default_rng(n)  # deterministic per size: both sides pick the same rows
    extra = rng.choice(n, size=k - len(spaced), replace=False)
    return np.unique(np.concatenate([spaced, extra]))


def _bits(a: np.ndarray) -> np.ndarray:
    """The values' bit patterns (bitwise comparison: -0.0 != 0.0, NaN == same NaN)."""
    a = np.ascontiguousarray(a)
    kinds = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
    if a.dtype.kind in "fiub" and a.dtype.itemsize in kinds:
        return a.view(kinds[a.dtype.itemsize])
    return a


def _keras_weights(model, notes: list[str]) -> list[_Weight]:
    """A Keras model's weights (seed-generator states left out: random state, not weights)."""
    import keras

    from graphkit import _keras_api

    roles: dict[int, tuple] = {}
    for layer in _keras_api.flatten_layers(model, include_self=True):
        try:
            if isinstance(layer, keras.layers.Embedding):
                roles[id(layer.embeddings)] = ("table", False, layer.name, None)
            elif isinstance(layer, keras.layers.Dense):
                linear = layer.activation in (keras.activations.linear, None)
                kernel = layer.kernel
                roles[id(kernel)] = ("kernel", bool(layer.use_bias) or not linear, layer.name, None)
                if layer.use_bias and layer.bias is not None:
                    roles[id(layer.bias)] = ("bias", False, layer.name, _var_name(kernel))
        except Exception:  # an odd or quantized layer: no role, compared like any weight
            continue
    labels = _weight_labels(model)
    out, skipped = [], 0
    for i, variable in enumerate(model.weights):
        name = _var_name(variable)
        if name.rsplit("/", 1)[-1] == "seed_generator_state":
            skipped += 1
            continue
        role, folds, layer, bias_of = roles.get(id(variable), (None, False, None, None))
        out.append(
            _Weight(
                name,
                tuple(int(d) for d in variable.shape),
                np.dtype(keras.backend.standardize_dtype(variable.dtype)),
                _variable_reader(variable),
                i,
                role=role,
                folds=folds,
                layer=layer,
                bias_of=bias_of,
                identity=id(variable),
                label=labels.get(id(variable)),
            )
        )
    if skipped:
        notes.append(f"{skipped} seed-generator state(s) not compared (random state, not weights)")
    return out


def _weight_labels(model) -> dict[int, str]:
    """``id(variable)`` -> ``<layer path as inspect prints it>/<variable name>``, for the
    variables of layers held as attributes under another name than their own (a custom
    layer's ``token_emb``, auto-named ``embedding``); the others keep Keras' own path."""
    from graphkit import _keras_api
    from graphkit.model_facts import layer_paths

    try:
        shown, named = layer_paths(model), layer_paths(model, by_name=True)
        paths = {key: path for key, path in shown.items() if named.get(key) != path}
        owner: dict[int, str] = {}
        for layer in _keras_api.flatten_layers(model, include_self=False):
            path = paths.get(id(layer))
            if path is None:
                continue
            for v in layer.weights:  # the deepest layer holding a variable owns it
                if id(v) not in owner or path.count("/") > owner[id(v)].count("/"):
                    owner[id(v)] = path
        return {
            key: f"{path}/{v.name}"
            for v in model.weights
            if (key := id(v)) in owner and (path := owner[key])
        }
    except Exception:  # a model whose sublayers cannot be walked: the variables' paths
        return {}


def _var_name(variable) -> str:
    return str(getattr(variable, "path", None) or variable.name)


def _variable_reader(variable):
    import keras

    source = variable.value if hasattr(variable, "value") else variable

    def read(begin: int, end: int) -> np.ndarray:
        if not variable.shape:
            return np.asarray(keras.ops.convert_to_numpy(source))
        return np.asarray(keras.ops.convert_to_numpy(source[begin:end]))

    return read


def _onnx_weights(path: str, notes: list[str], floats_only: bool) -> list[_Weight]:
    """An ONNX model's initializers (main graph), read without loading external data:
    inline ones from their bytes, external ones through a memory map."""
    import onnx
    from onnx import TensorProto, helper

    from graphkit.onnx_passes.fuse_onehot import valid_rows

    proto = onnx.load(str(path), load_external_data=False)
    fused = valid_rows(proto)
    folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    out, skipped = [], 0
    cache: dict[str, Any] = {}  # the one inline tensor held as an array (see _onnx_reader)
    for i, tensor in enumerate(proto.graph.initializer):
        try:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type))
        except Exception:
            skipped += 1
            continue
        if tensor.data_type == TensorProto.STRING or dtype.kind not in "fiub":
            skipped += 1
            continue
        if floats_only and dtype.kind != "f":
            continue  # shape constants and indices: no Keras weight to pair with
        shape = tuple(int(d) for d in tensor.dims)
        try:
            reader = _onnx_reader(tensor, dtype, shape, folder, cache)
        except Exception as exc:
            notes.append(f"initializer {tensor.name!r} not read: {one_line(exc, with_type=False)}")
            continue
        rows = fused.get(tensor.name)
        out.append(
            _Weight(
                tensor.name,
                shape,
                dtype,
                reader,
                i,
                role="table" if rows is not None else None,
                valid_rows=rows if rows is not None and shape and 0 < rows <= shape[0] else None,
            )
        )
    if skipped:
        notes.append(f"{skipped} non-numeric initializer(s) not compared")
    return out


def _onnx_reader(tensor, dtype: np.dtype, shape: tuple, folder: str, cache: dict):
    """Row-slice reader of an initializer. External data: a memory map (nothing copied).
    Inline: protobuf hands out a copy of the bytes on each access, so one side holds one
    inline tensor's array at a time (``cache``), made when first read."""
    from onnx import TensorProto

    if tensor.data_location == TensorProto.EXTERNAL:
        return _array_reader(_onnx_array(tensor, dtype, shape, folder))

    def array() -> np.ndarray:
        if cache.get("name") is not tensor:
            cache.clear()  # the previous tensor's copy goes first
            cache["array"] = _onnx_array(tensor, dtype, shape, folder)
            cache["name"] = tensor
        return cache["array"]

    def read(begin: int, end: int) -> np.ndarray:
        values = array()
        return np.asarray(values if values.ndim == 0 else values[begin:end])

    return read


def _onnx_array(tensor, dtype: np.dtype, shape: tuple, folder: str) -> np.ndarray:
    """The initializer's values: a memory map of its external data (a location outside the
    model's folder is refused), or an array over its inline bytes."""
    from onnx import TensorProto, numpy_helper

    if tensor.data_location == TensorProto.EXTERNAL:
        info = {e.key: e.value for e in tensor.external_data}
        location = os.path.realpath(os.path.join(folder, info.get("location", "")))
        if os.path.commonpath([folder, location]) != folder:
            raise ValueError("external data outside the model's folder")
        offset = int(info.get("offset", 0) or 0)
        count = int(np.prod(shape)) if shape else 1
        if count == 0:
            return np.zeros(shape, dtype)
        return np.memmap(
            location, dtype=dtype.newbyteorder("<"), mode="r", offset=offset, shape=shape or (1,)
        ).reshape(shape)
    if tensor.HasField("raw_data") and dtype.kind in "fiu" and dtype != np.dtype(bool):
        return np.frombuffer(tensor.raw_data, dtype=dtype.newbyteorder("<")).reshape(shape)
    return numpy_helper.to_array(tensor)


def _array_reader(array: np.ndarray):
    def read(begin: int, end: int) -> np.ndarray:
        if array.ndim == 0:
            return np.asarray(array)
        return np.asarray(array[begin:end])

    return read


def _side(backend, notes: list[str], floats_only: bool) -> tuple[str, list[_Weight]] | None:
    """What a backend holds: ("keras", weights) or ("onnx", weights); None if neither."""
    model = getattr(backend, "model", None)
    if model is not None and getattr(backend, "kind", None) != "onnx":
        return "keras", _keras_weights(model, notes)
    if getattr(backend, "kind", None) == "onnx":
        return "onnx", _onnx_weights(backend.source, notes, floats_only)
    if getattr(backend, "kind", None) == "litert":
        return "litert", _litert_weights(backend)
    return None


def _litert_weights(backend) -> list[_Weight]:
    """A .tflite file's float constants (``LiteRTBackend.constants``: views of the file's
    bytes, a FULLY_CONNECTED's weights back in Keras' (in, out) layout)."""
    return [
        _Weight(name, tuple(a.shape), a.dtype, _array_reader(a), order, role=role)
        for order, (name, a, role) in enumerate(backend.constants())
    ]


# -------------------------------------------------------------------------- comparison


def _compare(ref: _Weight, cand: _Weight, paired_by: str, note: str | None = None) -> WeightPair:
    """Bitwise comparison of ``ref`` and ``cand`` (over ``ref.key``) in row slices; a weight
    that cannot be read leaves the pair unpaired, with the reason as its note."""
    try:
        return _compare_values(ref, cand, paired_by, note)
    except Exception as exc:
        why = f"not compared with {cand.name}: {one_line(exc, with_type=False)}"
        return WeightPair(ref.shown, None, ref.shape, "unpaired", None, note=why)


def _compare_values(ref: _Weight, cand: _Weight, paired_by: str, note: str | None) -> WeightPair:
    pair = WeightPair(ref.shown, cand.shown, ref.shape, "equal", paired_by, note=note)
    if ref.identity is not None and ref.identity == cand.identity:
        return pair  # the same variable on both sides (a model converted with copy=False)
    if ref.key != cand.key:
        pair.status, pair.note = "differs", f"shape {ref.shape} vs {cand.shape}"
        return pair
    one_d = len(ref.shape) == 1
    pair.unit = "elements" if one_d else "rows"
    rows = ref.rows
    per_row = max(1, int(np.prod(ref.shape[1:])) * max(ref.dtype.itemsize, cand.dtype.itemsize))
    step = max(1, SLICE_BYTES // per_row)
    common = _common_dtype(ref.dtype, cand.dtype)
    same_dtype = ref.dtype == cand.dtype
    ranges: list[list[int]] = []
    differing, max_abs = 0, None
    for begin in range(0, rows if ref.shape else 1, step):
        end = min(rows, begin + step) if ref.shape else 1
        a, b = ref.read(begin, end), cand.read(begin, end)
        a = a.reshape(len(a), -1) if ref.shape else a.reshape(1, -1)
        b = b.reshape(len(b), -1) if ref.shape else b.reshape(1, -1)
        if common is not None:  # bitwise, in the narrower float dtype where they differ
            a, b = a.astype(common, copy=False), b.astype(common, copy=False)
            diff = _bits(a) != _bits(b)
        else:
            with np.errstate(invalid="ignore"):
                diff = a.astype(np.float64) != b.astype(np.float64)
        bad = np.flatnonzero(diff.any(axis=1))
        del diff
        if not bad.size:
            continue
        with np.errstate(invalid="ignore", over="ignore"):
            delta = np.abs(a[bad].astype(np.float64) - b[bad].astype(np.float64))
        local = float(np.max(delta)) if delta.size else 0.0
        max_abs = local if max_abs is None or not local <= max_abs else max_abs
        differing += int(bad.size)
        _add_ranges(ranges, bad + begin)
    if differing:
        pair.status, pair.differing, pair.max_abs = "differs", differing, max_abs
        pair.rows = _ranges_text(ranges) if ref.shape else None
    if not same_dtype:
        how = f"compared in {common}" if common is not None else "values compared"
        pair.note = _join(pair.note, f"dtype {ref.dtype} vs {cand.dtype}: {how}")
    return pair


def _common_dtype(a: np.dtype, b: np.dtype) -> np.dtype | None:
    """The dtype to compare bit patterns in: the shared one, or the narrower of two float
    dtypes (a float16 table cast from a float32 kernel is a copy if the cast is exact);
    None where only values can be compared."""
    if a == b:
        return a
    if a.kind == "f" and b.kind == "f":
        return a if a.itemsize < b.itemsize else b
    return None


def _join(a: str | None, b: str) -> str:
    return f"{a}; {b}" if a else b


def _add_ranges(ranges: list[list[int]], rows: np.ndarray) -> None:
    """Merge sorted row numbers into ``ranges`` ([first, last] each)."""
    if not rows.size:
        return
    breaks = np.flatnonzero(np.diff(rows) != 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [rows.size - 1]])
    for s, e in zip(starts, ends):
        first, last = int(rows[s]), int(rows[e])
        if ranges and ranges[-1][1] + 1 == first:
            ranges[-1][1] = last
        else:
            ranges.append([first, last])


def _ranges_text(ranges: list[list[int]]) -> str:
    parts = [str(a) if a == b else f"{a}..{b}" for a, b in ranges[:MAX_RANGES]]
    if len(ranges) > MAX_RANGES:
        parts.append(f"... ({len(ranges) - MAX_RANGES} more ranges)")
    return ", ".join(parts)


def _sample_agreement(a: _Weight, b: _Weight) -> float:
    x, y = a.sample(), b.sample()
    if x.shape != y.shape or not x.size:
        return 0.0
    common = _common_dtype(x.dtype, y.dtype)
    if common is not None:
        return float(np.mean(_bits(x.astype(common)) == _bits(y.astype(common))))
    with np.errstate(invalid="ignore"):
        return float(np.mean(x.astype(np.float64) == y.astype(np.float64)))


def _transformed(ref: _Weight, cand: _Weight, fused: bool = False) -> str | None:
    """Why ``ref`` and ``cand`` are one weight that a rewrite or pass changed, or None.
    By roles: a Dense kernel with bias or activation against a table. With ``fused``, also a
    fused table against a weight that is not one (the caller found no copy between them)."""
    for a, b in ((ref, cand), (cand, ref)):
        if a.role == "kernel" and a.folds and b.role == "table":
            what = "fused table" if b.valid_rows is not None else "Embedding table"
            return f"bias/activation of {a.layer or a.name!r} folded into the {what}"
    if fused and (ref.valid_rows is not None) != (cand.valid_rows is not None):
        return "fused table holding another value (kernel + bias?)"
    return None


def _is_rewrite_pair(a: _Weight, b: _Weight) -> bool:
    roles = {a.role, b.role}
    return roles == {"table", "kernel"} and a.valid_rows is None and b.valid_rows is None


def _suffixes(name: str) -> list[str]:
    """``a/b/c/d`` -> ``b/c/d``, ``c/d`` (layer + variable at least)."""
    parts = name.split("/")
    return ["/".join(parts[k:]) for k in range(1, len(parts) - 1)]


def _pair_by_name(refs, cands, keras_paths: bool) -> list[tuple[_Weight, _Weight]]:
    """Same name and shape; for Keras, also a path that is a component-wise suffix of the
    other's (outer scopes dropped when a model is rebuilt), when that is unambiguous."""
    pairs, used_r, used_c = [], set(), set()
    by_name: dict[str, list[_Weight]] = {}
    for c in cands:
        by_name.setdefault(c.name, []).append(c)
    for r in refs:
        found = [c for c in by_name.get(r.name, []) if c.shape == r.shape]
        if len(found) == 1 and id(found[0]) not in used_c:
            pairs.append((r, found[0]))
            used_r.add(id(r))
            used_c.add(id(found[0]))
    if not keras_paths:
        return pairs
    rest_r = [r for r in refs if id(r) not in used_r]
    rest_c = [c for c in cands if id(c) not in used_c]
    full_c = {}
    suffix_c: dict[str, list[_Weight]] = {}
    for c in rest_c:
        full_c.setdefault(c.name, []).append(c)
        for s in _suffixes(c.name):
            suffix_c.setdefault(s, []).append(c)
    proposals: dict[int, list[_Weight]] = {}
    for r in rest_r:
        found = {id(c): c for s in _suffixes(r.name) for c in full_c.get(s, [])}
        found.update({id(c): c for c in suffix_c.get(r.name, [])})
        found = {k: c for k, c in found.items() if c.shape == r.shape}
        if len(found) == 1:
            proposals.setdefault(next(iter(found)), []).append(r)
    by_id = {id(c): c for c in rest_c}
    for cid, rs in proposals.items():
        if len(rs) == 1:  # the candidate is claimed by this reference alone
            pairs.append((rs[0], by_id[cid]))
    return pairs


def _pair_by_value(refs, cands, report: WeightsReport, done: dict, used: set) -> None:
    """Steps 2 to 4 over shape buckets (see the module's doc): pairs go to ``done`` (by the
    reference's id), the candidates they took to ``used``."""
    buckets: dict[tuple, tuple[list, list]] = {}
    for r in refs:
        buckets.setdefault(r.key, ([], []))[0].append(r)
    for c in cands:
        if c.key in buckets:
            buckets[c.key][1].append(c)

    def take(r, c, pair):
        done[id(r)] = pair
        used.add(id(c))

    for key, (rs, cs) in buckets.items():
        if not cs:
            continue
        # 2: bitwise-equal partners, found by fingerprint, confirmed in full
        groups: dict[bytes, list[_Weight]] = {}
        for c in cs:
            groups.setdefault(_safe_digest(c, report), []).append(c)
        for r in rs:
            tries = 0
            for c in groups.get(_safe_digest(r, report), []):
                if id(c) in used or tries >= MAX_TRIES:
                    continue
                tries += 1
                pair = _compare(r, c, "rewrite" if _is_rewrite_pair(r, c) else "value")
                if pair.status == "equal":
                    if r.valid_rows is not None or c.valid_rows is not None:
                        pair.note = "fused table: its extra out-of-range row is not compared"
                    take(r, c, pair)
                    break
        rest_r = [r for r in rs if id(r) not in done]
        rest_c = [c for c in cs if id(c) not in used]
        if not rest_r or not rest_c:
            continue
        if len(rest_r) * len(rest_c) > MAX_BUCKET_PAIRS:
            report.notes.append(
                f"{len(rest_r)} x {len(rest_c)} unpaired weights of shape {key}: "
                "not searched for changed copies"
            )
            continue
        # 4 first where the roles say so: such a pair is never "a copy with a change"
        for r in rest_r:
            options = [c for c in rest_c if id(c) not in used and _transformed(r, c)]
            if len(options) == 1 and (
                len([x for x in rest_r if id(x) not in done and _transformed(x, options[0])]) == 1
            ):
                c = options[0]
                take(
                    r,
                    c,
                    WeightPair(
                        r.shown, c.shown, r.shape, "transformed", "rewrite", note=_transformed(r, c)
                    ),
                )
        # 3: mutual best partner with mostly equal sampled values
        rest_r = [r for r in rs if id(r) not in done]
        rest_c = [c for c in cs if id(c) not in used]
        scores = {(id(r), id(c)): _sample_agreement(r, c) for r in rest_r for c in rest_c}
        for r in rest_r:
            best = max(rest_c, key=lambda c: scores[(id(r), id(c))], default=None)
            if best is None or id(best) in used:
                continue
            score = scores[(id(r), id(best))]
            rivals = [x for x in rest_r if id(x) not in done]
            if score < MOSTLY_EQUAL or any(
                scores[(id(x), id(best))] > score for x in rivals if x is not r
            ):
                continue
            pair = _compare(r, best, "rewrite" if _is_rewrite_pair(r, best) else "value")
            if r.valid_rows is not None or best.valid_rows is not None:
                pair.note = _join(
                    pair.note, "fused table: its extra out-of-range row is not compared"
                )
            take(r, best, pair)
        # 4 again, by uniqueness alone: the only two left of this shape, one of them fused
        rest_r = [r for r in rs if id(r) not in done]
        rest_c = [c for c in cs if id(c) not in used]
        if len(rest_r) == 1 and len(rest_c) == 1:
            why = _transformed(rest_r[0], rest_c[0], fused=True)
            if why:
                r, c = rest_r[0], rest_c[0]
                take(
                    r, c, WeightPair(r.shown, c.shown, r.shape, "transformed", "rewrite", note=why)
                )
    return None


def _safe_digest(w: _Weight, report: WeightsReport) -> bytes:
    try:
        return w.digest
    except Exception as exc:  # unreadable: never equal to anything
        report.notes.append(f"{w.shown}: not read ({one_line(exc, with_type=False)})")
        w._digest = b"unreadable:" + w.name.encode()
        w._sample = np.zeros(0)
        return w._digest


def compare_weights(reference, candidate) -> WeightsReport:
    """Pair the weights of two backends (``graphkit.backends``: Keras or ONNX) and compare
    each pair bit for bit (see the module's doc). Never raises for an odd model: what
    cannot be read becomes a note, and ``compared`` is False when nothing could be."""
    start = time.perf_counter()
    report = WeightsReport()
    try:
        _run(reference, candidate, report)
    except Exception as exc:  # a model graphkit cannot read weights from: say so, verify goes on
        report.pairs, report.candidate_only, report.compared = [], [], False
        report.notes.insert(0, f"weights not compared: {one_line(exc, with_type=False)}")
    report.seconds = time.perf_counter() - start
    return report


def _run(reference, candidate, report: WeightsReport) -> None:
    kinds = [getattr(b, "kind", "?") for b in (reference, candidate)]
    keras_onnx = sorted(k if k == "onnx" else "keras" for k in kinds) == ["keras", "onnx"]
    sides = [_side(b, report.notes, floats_only=keras_onnx) for b in (reference, candidate)]
    if sides[0] is None or sides[1] is None:
        report.compared = False
        report.notes.insert(0, f"weights not compared: no weights to read from {kinds}")
        return
    (kind_r, refs), (kind_c, cands) = sides
    done: dict[int, WeightPair] = {}
    used: set[int] = set()
    if kind_r == kind_c:
        for r, c in _pair_by_name(refs, cands, keras_paths=kind_r == "keras"):
            pair = _compare(r, c, "path")
            done[id(r)] = pair
            used.add(id(c))
    rest_r = [r for r in refs if id(r) not in done]
    rest_c = [c for c in cands if id(c) not in used]
    _pair_by_value(rest_r, rest_c, report, done, used)
    # a folded Dense's bias went into the table with its kernel
    folded = {
        r.name: p for r in refs if (p := done.get(id(r))) is not None and p.status == "transformed"
    }
    for r in refs:
        pair = done.get(id(r))
        if pair is None and r.role == "bias" and r.bias_of in folded:
            target = folded[r.bias_of].candidate
            pair = WeightPair(
                r.shown, None, r.shape, "transformed", "rewrite", note=f"folded into {target}"
            )
        if pair is None:
            pair = WeightPair(r.shown, None, r.shape, "unpaired")
        report.pairs.append(pair)
    shown = {c.name: c.shown for c in cands}  # pairs hold labels; bias_of holds a name
    for c in cands:
        if id(c) not in used:
            if c.role == "bias" and any(
                p.candidate == shown.get(c.bias_of, c.bias_of) and p.status == "transformed"
                for p in report.pairs
            ):
                continue  # folded the other way (the candidate is the Dense form)
            report.candidate_only.append(c.shown)
