"""Backends that run a model batch by batch: Keras (.keras/.h5/in-memory), ONNX (onnxruntime)
and LiteRT (.tflite, ai-edge-litert).

``verify``, ``export`` and ``bench`` only talk to this interface: a backend has a
signature (named inputs with shape and dtype, and what index range each integer
input takes), output names, notes on how it ran, and ``run(batch) -> list of arrays``.
Importing this package imports neither TensorFlow nor onnxruntime nor LiteRT.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from graphkit.backends.base import PROVIDERS, Backend, InputSpec, TableRead
from graphkit.backends.keras_backend import (
    KerasBackend,
    eager_call,
    locate_divergence,
    model_feed,
    probe_batch,
    serving_function,
    smallest_vocab,
)
from graphkit.backends.litert_backend import LiteRTBackend
from graphkit.backends.onnx_backend import OnnxBackend, check_file_exists, check_onnx_file

__all__ = [
    "PROVIDERS",
    "Backend",
    "InputSpec",
    "TableRead",
    "KerasBackend",
    "LiteRTBackend",
    "OnnxBackend",
    "check_file_exists",
    "check_onnx_file",
    "eager_call",
    "locate_divergence",
    "model_feed",
    "open_backend",
    "probe_batch",
    "serving_function",
    "smallest_vocab",
]


def open_backend(
    source: Any, *, provider: str = "cpu", unsafe: bool = False, imports=(), onehot_lambdas=()
) -> Backend:
    """A backend for a path (.keras, .h5, .onnx, .tflite) or an in-memory Keras model."""
    if isinstance(source, Backend):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.suffix.lower() == ".onnx":
            return OnnxBackend(path, provider=provider)
        if path.suffix.lower() == ".tflite":
            return LiteRTBackend(path, provider=provider)
        from graphkit.io import load_model

        return KerasBackend(
            load_model(
                path,
                unsafe=unsafe,
                imports=imports,
                compile=False,
                onehot_lambdas=onehot_lambdas,
            ),
            str(path),
        )
    return KerasBackend(source)
