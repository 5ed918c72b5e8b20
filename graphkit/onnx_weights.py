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

    def initializer(self, array, name: str):
        """A TensorProto for ``array``: inline, or an external reference held here."""
        from onnx import TensorProto, helper, numpy_helper

        array = np.asarray(array)
        if not self.external or array.nbytes < MIN_EXTERNAL:
            return numpy_helper.from_array(array, name)
        tensor = TensorProto()
        tensor.name = name
        tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.dims.extend(array.shape)
        tensor.data_location = TensorProto.EXTERNAL
        self.arrays[name] = array
        return tensor

    def array(self, tensor) -> np.ndarray | None:
        return self.arrays.get(tensor.name)

    @property
    def external_bytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())

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
                    array = np.ascontiguousarray(self.arrays[tensor.name])
                    pad = -offset % ALIGN
                    fh.write(b"\0" * pad)
                    offset += pad
                    fh.write(memoryview(array).cast("B"))
                    del tensor.external_data[:]
                    for key, value in (
                        ("location", data_path.name),
                        ("offset", str(offset)),
                        ("length", str(array.nbytes)),
                    ):
                        entry = tensor.external_data.add()
                        entry.key, entry.value = key, value
                    offset += array.nbytes
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
