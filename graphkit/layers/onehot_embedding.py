"""``OneHotEmbedding`` and ``OneHotReversibleEmbedding``: Embedding's lookup as one_hot(x) @ table.

Drop-in replacements for an Embedding held where graph surgery cannot reach (an attribute
of a custom layer or subclassed model, a ReversibleEmbedding called both ways): same call
signature, same config, same single ``embeddings`` variable (so a file holding one loads its
table into a rebuilt Embedding too), same mask. Only the lookup differs: a MatMul of the
one-hot rows with the table instead of a Gather, which is what accelerators and quantizers
that prefer MatMul want. For ``0 <= i < input_dim`` a one-hot row times the table is exactly
the table's row ``i`` (every other term is an exact zero), so predictions are identical;
other indices give a zero row (Embedding wraps negative ones and raises past the end).
"""

from __future__ import annotations

import keras
from keras import ops


def onehot_lookup(layer, inputs):
    """``one_hot(inputs) @ layer.embeddings`` in the table's dtype, then the compute dtype."""
    if inputs.dtype != "int32":
        inputs = ops.cast(inputs, "int32")
    # negative indices go out of range (a zero row), also in ONNX where OneHot would wrap them
    inputs = ops.where(ops.less(inputs, 0), layer.input_dim, inputs)
    table = layer.embeddings
    rows = ops.one_hot(inputs, layer.input_dim, dtype=table.dtype)
    return ops.cast(ops.matmul(rows, table), layer.compute_dtype)


@keras.saving.register_keras_serializable(package="graphkit", name="OneHotEmbedding")
class OneHotEmbedding(keras.layers.Embedding):
    """``keras.layers.Embedding`` whose lookup is ``one_hot(x) @ table`` (exact for valid x)."""

    def call(self, inputs):
        if self.quantization_mode is not None or self.lora_enabled:
            raise ValueError("OneHotEmbedding computes float tables without LoRA only")
        return onehot_lookup(self, inputs)


@keras.saving.register_keras_serializable(package="graphkit", name="OneHotReversibleEmbedding")
class OneHotReversibleEmbedding(keras.layers.ReversibleEmbedding):
    """``ReversibleEmbedding`` whose lookup is ``one_hot(x) @ table``; ``reverse=True`` is
    unchanged (``x @ table.T`` with the soft cap), from the same variable: a tie stays a tie."""

    def call(self, inputs, reverse=False):
        if reverse:
            return super().call(inputs, reverse=True)
        if self.quantization_mode is not None or self.lora_enabled:
            raise ValueError("OneHotReversibleEmbedding computes float tables without LoRA only")
        result = onehot_lookup(self, inputs)
        if self.mask_zero:  # as ReversibleEmbedding does: the mask is set on the result
            from graphkit import _keras_api

            _keras_api.set_keras_mask(result, ops.not_equal(inputs, 0))
        return result


def onehot_class(embedding_class: type) -> type | None:
    """The one-hot twin of an Embedding class (None if graphkit has none)."""
    if embedding_class is keras.layers.Embedding:
        return OneHotEmbedding
    if embedding_class is keras.layers.ReversibleEmbedding:
        return OneHotReversibleEmbedding
    return None


def embedding_class(onehot_class_: type) -> type | None:
    """The Keras class a one-hot twin goes back to."""
    if onehot_class_ is OneHotEmbedding:
        return keras.layers.Embedding
    if onehot_class_ is OneHotReversibleEmbedding:
        return keras.layers.ReversibleEmbedding
    return None
