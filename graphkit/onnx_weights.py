"""Weights of an exported model: attached as initializers, inline or in ``<model>.onnx.data``.

The Keras model is traced with its variables as function inputs (``stateless_call``), so no
weight ever enters a TensorFlow GraphDef (which stops at 2 GB) and tf2onnx handles only the
small graph. The variables then become ONNX initializers straight from their arrays:

* inline, in the ``.onnx`` file, while all weights together stay under ``THRESHOLD``;
* above it (or always, with ``external=True``), every tensor of at least ``MIN_EXTERNAL``
  bytes is an external-data reference into ``<model>.onnx.data``, and its bytes are written
  there from the array, once, without a copy inside a protobuf.

While an export runs, ``active(weights)`` lets the ONNX passes read such tensors
(``GraphIndex.constant``) and add new ones (``initializer``), so ``--fuse-onehot`` works on
tables of any size.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from pathlib import Path

import numpy as np

THRESHOLD = 1 << 30  # bytes of weights above which they go to external data
PROTOBUF_LIMIT = 2**31 - 1  # what one protobuf message (an .onnx file) can hold
MIN_EXTERNAL = 1 << 10  # smaller tensors stay inline even then
ALIGN = 4096  # offsets in the data file (lets onnxruntime map them)

_current: contextvars.ContextVar[Weights | None] = contextvars.ContextVar(
    "graphkit_weights", default=None
)


class Weights:
    """The arrays behind a model's external initializers, until they are written."""

    def __init__(self, external: bool):
        self.external = external
        self.arrays: dict[str, np.ndarray] = {}
        self.left_out = (0, 0)  # (initializers, bytes) that no node read: never written

    def wants_external(self, value) -> bool:
        return self.external and _nbytes(value) >= MIN_EXTERNAL

    def initializer(self, value, name: str):
        """A TensorProto for ``value`` (an array, or a Keras variable read only when written):
        inline, or an external reference held here."""
        from onnx import TensorProto, helper, numpy_helper

        if not self.wants_external(value):
            return numpy_helper.from_array(np.asarray(value), name)
        tensor = TensorProto()
        tensor.name = name
        tensor.data_type = helper.np_dtype_to_tensor_dtype(_dtype(value))
        tensor.dims.extend(tuple(value.shape))
        tensor.data_location = TensorProto.EXTERNAL
        self.arrays[name] = value
        return tensor

    def array(self, tensor) -> np.ndarray | None:
        """The values behind an external tensor, as an array (a pass needs them)."""
        value = self.arrays.get(tensor.name)
        if value is not None and not isinstance(value, np.ndarray):
            import keras

            value = self.arrays[tensor.name] = keras.ops.convert_to_numpy(value)
        return value

    def note_left_out(self, count: int, size: int) -> None:
        self.left_out = (self.left_out[0] + count, self.left_out[1] + size)

    def drop_unused(self, proto) -> None:
        """Remove the main graph's initializers that no node reads (a read inside a Loop/If/Scan
        body counts; so does a graph output), counting them in ``left_out``."""
        from graphkit.onnx_reads import node_reads

        graph = proto.graph
        read = {o.name for o in graph.output}.union(*(node_reads(n) for n in graph.node))
        keep = [t for t in graph.initializer if t.name in read]
        if len(keep) == len(graph.initializer):
            return
        dropped = [t for t in graph.initializer if t.name not in read]
        self.note_left_out(len(dropped), sum(tensor_nbytes(t) for t in dropped))
        del graph.initializer[:]
        graph.initializer.extend(keep)
        names = {t.name for t in dropped}
        inputs = [i for i in graph.input if i.name not in names]  # IR < 4 listed them too
        if len(inputs) != len(graph.input):
            del graph.input[:]
            graph.input.extend(inputs)
        self.prune(proto)

    def prune(self, proto) -> None:
        """Forget the arrays of tensors no longer in ``proto`` (replaced by a pass)."""
        names = {t.name for t in proto.graph.initializer}
        for name in [n for n in self.arrays if n not in names]:
            del self.arrays[name]

    @property
    def external_bytes(self) -> int:
        return sum(_nbytes(a) for a in self.arrays.values())

    def write(self, proto, model_path: Path) -> Path | None:
        """Write ``proto`` to ``model_path`` and its external tensors to ``<model>.data``
        beside it (streamed from the arrays). Returns the data file's path, if any."""
        import onnx
        from onnx import TensorProto

        external = [
            t
            for t in proto.graph.initializer
            if t.data_location == TensorProto.EXTERNAL and t.name in self.arrays
        ]
        data_path = None
        if external:
            data_path = model_path.with_name(model_path.name + ".data")
            offset = 0
            with open(data_path, "wb") as fh:
                for tensor in external:
                    value = self.arrays[tensor.name]
                    pad = -offset % ALIGN
                    fh.write(b"\0" * pad)
                    offset += pad
                    length = _write_slices(fh, value)
                    del tensor.external_data[:]
                    for key, item in (
                        ("location", data_path.name),
                        ("offset", str(offset)),
                        ("length", str(length)),
                    ):
                        entry = tensor.external_data.add()
                        entry.key, entry.value = key, item
                    offset += length
                fh.flush()
                os.fsync(fh.fileno())
        onnx.save_model(proto, str(model_path))
        return data_path


def current() -> Weights | None:
    return _current.get()


@contextlib.contextmanager
def active(weights: Weights | None):
    token = _current.set(weights)
    try:
        yield weights
    finally:
        _current.reset(token)


def initializer(array, name: str):
    """A TensorProto for a new initializer: external when the running export puts big
    tensors in external data (see the module's doc), inline otherwise."""
    weights = current()
    if weights is not None:
        return weights.initializer(array, name)
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(array), name)


def external_array(tensor) -> np.ndarray | None:
    """The array behind an external tensor of the export running now, else None."""
    weights = current()
    return weights.array(tensor) if weights is not None else None


def has_external(proto) -> bool:
    from onnx import TensorProto

    return any(t.data_location == TensorProto.EXTERNAL for t in proto.graph.initializer)


SLICE_BYTES = 64 << 20


def nbytes(value) -> int:
    """Bytes of an array or Keras variable's values (nothing read)."""
    return _nbytes(value)


def tensor_nbytes(tensor) -> int:
    """Bytes of a TensorProto's values, from its dims and type (external data not read)."""
    from onnx import helper

    dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
    return int(np.prod(tuple(tensor.dims), dtype=np.int64)) * dtype.itemsize


def _nbytes(value) -> int:
    return int(np.prod(tuple(value.shape))) * np.dtype(_dtype(value)).itemsize


def _dtype(value) -> np.dtype:
    if isinstance(value, np.ndarray):
        return value.dtype
    import keras

    return np.dtype(keras.backend.standardize_dtype(value.dtype))


def _write_slices(fh, value) -> int:
    """Write ``value``'s bytes (C order) to ``fh``; a Keras variable is read in row slices,
    so no full host copy of a big table is ever made. Returns the bytes written."""
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        fh.write(memoryview(array).cast("B"))
        return array.nbytes
    import keras

    shape = tuple(value.shape)
    source = value.value if hasattr(value, "value") else value
    if not shape:
        data = np.ascontiguousarray(keras.ops.convert_to_numpy(source))
        fh.write(data.tobytes())
        return data.nbytes
    per_row = max(1, _nbytes(value) // max(1, shape[0]))
    step = max(1, SLICE_BYTES // per_row)
    written = 0
    for begin in range(0, shape[0], step):
        part = np.ascontiguousarray(keras.ops.convert_to_numpy(source[begin : begin + step]))
        fh.write(memoryview(part).cast("B"))
        written += part.nbytes
    return written
