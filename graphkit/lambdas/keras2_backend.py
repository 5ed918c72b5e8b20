"""The Keras 2 backend names (``K.one_hot``, ``K.cast``...) that old Lambda code calls.

A Keras 2 Lambda's saved bytecode refers to ``K``, the ``keras.backend`` module of the script
that saved it. Keras 3 has no such module and gives the function its own globals, so the
code fails with ``name 'K' is not defined``. With ``--unsafe`` (the user trusts the file),
graphkit gives such functions these globals: ``K`` and ``backend`` with Keras 2's signatures
on top of ``keras.ops``, and ``tf``, ``keras``, ``np``. Nothing here is used in safe mode.
"""

from __future__ import annotations

import types


def _module():
    import keras
    from keras import ops

    k = types.ModuleType("graphkit_keras2_backend")
    k.__doc__ = "Keras 2 backend functions on Keras 3 (graphkit --unsafe)"

    def one_hot(indices, num_classes):
        # Keras 2: tf.one_hot(indices, depth=num_classes, axis=-1), float32
        return ops.one_hot(indices, num_classes, dtype="float32")

    def cast(x, dtype):
        return ops.cast(x, dtype)

    def int_shape(x):
        return tuple(x.shape)

    def ndim(x):
        return len(x.shape)

    def dtype(x):
        return keras.backend.standardize_dtype(x.dtype)

    def sum(x, axis=None, keepdims=False):  # noqa: A001  (Keras 2's name)
        return ops.sum(x, axis=axis, keepdims=keepdims)

    def mean(x, axis=None, keepdims=False):
        return ops.mean(x, axis=axis, keepdims=keepdims)

    def max(x, axis=None, keepdims=False):  # noqa: A001
        return ops.max(x, axis=axis, keepdims=keepdims)

    def concatenate(tensors, axis=-1):
        return ops.concatenate(tensors, axis=axis)

    def floatx():
        return keras.config.floatx()

    def epsilon():
        return keras.config.epsilon()

    names = {
        "one_hot": one_hot,
        "cast": cast,
        "int_shape": int_shape,
        "ndim": ndim,
        "dtype": dtype,
        "sum": sum,
        "mean": mean,
        "max": max,
        "concatenate": concatenate,
        "floatx": floatx,
        "epsilon": epsilon,
    }
    for name, fn in names.items():
        setattr(k, name, fn)

    def __getattr__(name):  # everything else: keras.ops of the same name (argmax, reshape...)
        try:
            return getattr(ops, name)
        except AttributeError:
            raise AttributeError(
                f"Keras 2 backend function K.{name} has no Keras 3 equivalent in graphkit"
            ) from None

    k.__getattr__ = __getattr__
    return k


def lambda_globals() -> dict:
    """Globals for old Lambda code: ``K``/``backend`` (Keras 2 style), ``tf``, ``keras``,
    ``ops`` (``keras.ops``), ``layers``, ``np``."""
    import keras
    import numpy as np
    import tensorflow as tf

    k = _module()
    return {
        "K": k,
        "backend": k,
        "kb": k,
        "tf": tf,
        "keras": keras,
        "ops": keras.ops,
        "layers": keras.layers,
        "np": np,
    }
