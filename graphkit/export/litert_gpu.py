"""``export --litert --target gpu-delegate``: table lookups traced in the forms that the
LiteRT GPU delegate's rules take (TensorFlow's ``gpu_compatibility.cc``).

As traced by Keras, a lookup is refused by those rules three ways: Keras' negative-index
wrap (LESS/ADD/SELECT on int32 indices: SELECT takes float only), a GATHER over 2-D indices
(1-D only), and a ONE_HOT over int64 indices (Keras' TensorFlow backend casts to int64;
int32 only). While ``gpu_lookups()`` is active, ``Embedding`` (and its subclasses, such as
``ReversibleEmbedding``'s forward call) gathers rows by a flat int32 index vector and
reshapes back, and graphkit's one-hot layers take int32 indices straight into ONE_HOT; none
of them wraps negative indices. For ``0 <= i < input_dim`` each computes exactly what it
computed before (the same rows are read; the same one-hot rows multiply the same table), so
the export is verified against the eager Keras call as always. Outside that range it
differs: the file's contract is indices in ``[0, input_dim)``, as for the ONNX targets.

The change is to the classes' ``call`` for the length of one trace (then restored), so it
reaches Embeddings wherever they are held: Functional graphs, custom layers, subclassed
models, KerasHub backbones. It is not thread-safe: do not call a model in another thread
while an export traces it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

NOTE = (
    "gpu-delegate: lookups traced for the GPU delegate (flat int32 GATHER, int32 ONE_HOT, "
    "no negative-index wrap): inputs must be indices in [0, vocab)"
)


def _static_shape(tensor):
    """The tensor's shape as a list when every dimension is known, else a shape tensor."""
    import tensorflow as tf

    dims = tensor.shape.as_list()
    return dims if None not in dims else tf.shape(tensor)


def _rows(table, indices):
    """``table[indices]`` as GATHER over a flat int32 index vector, reshaped back."""
    import tensorflow as tf

    indices = tf.cast(indices, tf.int32)
    flat = tf.reshape(indices, [-1])
    rows = tf.gather(table, flat)
    shape = _static_shape(indices)
    tail = [int(d) for d in table.shape[1:]]
    if isinstance(shape, list):
        return tf.reshape(rows, shape + tail)
    return tf.reshape(rows, tf.concat([shape, tail], axis=0))


def _one_hot(indices, depth: int):
    """ONE_HOT over int32 indices with constant float on/off values, last axis."""
    import tensorflow as tf

    return tf.one_hot(
        tf.cast(indices, tf.int32), depth, on_value=1.0, off_value=0.0, axis=-1, dtype=tf.float32
    )


@contextmanager
def gpu_lookups() -> Iterator[None]:
    """While active, lookups trace in the GPU delegate's forms (see the module's text)."""
    import keras
    from keras import ops

    from graphkit.layers import onehot_embedding
    from graphkit.layers.one_hot import OneHot

    embedding_call = keras.layers.Embedding.call
    onehot_call = OneHot.call
    lookup = onehot_embedding.onehot_lookup

    def embedding_gpu(self, inputs, *args, **kwargs):
        if args or kwargs or self.quantization_mode is not None or self.lora_enabled:
            return embedding_call(self, inputs, *args, **kwargs)
        rows = _rows(ops.convert_to_tensor(self.embeddings), inputs)
        return ops.cast(rows, self.compute_dtype)

    def onehot_gpu(self, inputs):
        if self.wrap is not None:  # Keras 2 cast's wrap: keep the layer's own arithmetic
            return onehot_call(self, inputs)
        out = _one_hot(inputs, self.input_dim)
        return out if self.compute_dtype == "float32" else ops.cast(out, self.compute_dtype)

    def lookup_gpu(layer, inputs):
        table = ops.convert_to_tensor(layer.embeddings)
        rows = ops.cast(_one_hot(inputs, layer.input_dim), table.dtype)
        return ops.cast(ops.matmul(rows, table), layer.compute_dtype)

    keras.layers.Embedding.call = embedding_gpu
    OneHot.call = onehot_gpu
    onehot_embedding.onehot_lookup = lookup_gpu
    try:
        yield
    finally:
        keras.layers.Embedding.call = embedding_call
        OneHot.call = onehot_call
        onehot_embedding.onehot_lookup = lookup
