"""graphkit: rewrite and convert Keras model graphs.

``import graphkit`` is cheap: TensorFlow and Keras are imported only when a
function that needs them is called. graphkit's layers (``graphkit>OneHot``,
``graphkit>TimeDistributed``) are registered with Keras as soon as Keras is
imported, before or after graphkit, so ``keras.saving.load_model(path)``
works in safe mode on converted models after a plain ``import graphkit``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

from graphkit.errors import GraphkitError

__version__ = "0.1.0"

__all__ = [
    "GraphkitError",
    "__version__",
    "bench",
    "convert",
    "convert_file",
    "export_litert",
    "export_onnx",
    "run_model",
    "inspect_model",
    "load_model",
    "save_model",
    "verify",
]

_LAZY = {
    "convert": ("graphkit.conversion", "convert"),
    "convert_file": ("graphkit.conversion", "convert_file"),
    "run_model": ("graphkit.run", "run_model"),
    "bench": ("graphkit.bench", "bench"),
    "ConversionReport": ("graphkit.conversion", "ConversionReport"),
    "inspect_model": ("graphkit.inspect", "inspect_model"),
    "load_model": ("graphkit.io", "load_model"),
    "save_model": ("graphkit.io", "save_model"),
    "verify": ("graphkit.verification", "verify"),
    "export_onnx": ("graphkit.export.onnx", "export_onnx"),
    "export_litert": ("graphkit.export.litert", "export_litert"),
}


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name == "layers":
        return importlib.import_module("graphkit.layers")
    raise AttributeError(f"module 'graphkit' has no attribute {name!r}")


class _RegisterLayersAfterKeras(importlib.abc.MetaPathFinder):
    """Registers graphkit's layers right after ``keras`` finishes importing."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            importlib.import_module("graphkit.layers")

        spec.loader.exec_module = exec_then_register
        return spec


if "keras" in sys.modules:
    importlib.import_module("graphkit.layers")
elif not any(isinstance(f, _RegisterLayersAfterKeras) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterLayersAfterKeras())
