"""``OneHot``: the missing Keras layer whose output is a one-hot vector."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="graphkit", name="OneHot")
class OneHot(keras.layers.Layer):
    """Turns integer indices into one-hot vectors: ``(...)`` -> ``(..., input_dim)``.

    Arguments mirror ``keras.layers.Embedding``: ``OneHot(input_dim, mask_zero)``
    followed by ``Dense(output_dim, use_bias=False)`` computes exactly what
    ``Embedding(input_dim, output_dim, mask_zero)`` computes for valid indices.

    * Indices may be integer or float tensors of any rank; they are cast to
      int32 (floats are truncated toward zero, like Embedding does). Never
      uint8, so vocabularies past 256 work.
    * The output has the layer's compute dtype, so dtype policies such as
      ``mixed_float16`` apply.
    * With ``mask_zero=True`` the mask is ``indices != 0``, as for Embedding.
    * Out-of-range indices (``i < 0`` or ``i >= input_dim``) give an all-zero
      row. Embedding differs there: it wraps negative indices (``-1`` is the
      last row) and raises for ``i >= input_dim`` on CPU. The two forms agree
      exactly on ``0 <= i < input_dim`` only; ``graphkit verify`` rejects
      other indices.
    * ``wrap=m`` takes indices modulo ``m`` first (``i % m``, so ``-1`` is ``m - 1``):
      what a cast to an ``m``-valued integer type does, e.g. the ``uint8`` cast of the
      well-known ``Lambda(K.one_hot)`` recipe (``wrap=256``). graphkit sets it only when it
      adopts such a Lambda, to keep its behaviour exactly.
    """

    def __init__(self, input_dim: int, mask_zero: bool = False, wrap: int | None = None, **kwargs):
        super().__init__(**kwargs)
        input_dim = int(input_dim)
        if input_dim <= 0:
            raise ValueError(
                f"OneHot: input_dim must be a positive integer, received input_dim={input_dim}"
            )
        self.input_dim = input_dim
        self.mask_zero = bool(mask_zero)
        if wrap is not None and int(wrap) <= 0:
            raise ValueError(f"OneHot: wrap must be a positive integer, received wrap={wrap}")
        self.wrap = None if wrap is None else int(wrap)
        self.supports_masking = self.mask_zero
        # The inputs are indices: never cast them to the float compute dtype.
        self.autocast = False

    def call(self, inputs):
        if inputs.dtype != "int32":
            inputs = ops.cast(inputs, "int32")
        if self.wrap is not None:
            inputs = ops.mod(inputs, self.wrap)  # floor modulo: -1 -> wrap - 1, like the cast
        # A negative index gives a zero row, like any out-of-range one. TensorFlow's one_hot
        # does so already, but ONNX's OneHot wraps -depth..-1 to the last rows: sending them
        # to ``input_dim`` keeps exported models equal to Keras for every index.
        inputs = ops.where(ops.less(inputs, 0), self.input_dim, inputs)
        # One-hot in float32, then cast: 0 and 1 are exact in every float dtype, and tf2onnx
        # cannot export a float16 one_hot (it emits an invalid ONNX OneHot node).
        out = ops.one_hot(inputs, self.input_dim, dtype="float32")
        if self.compute_dtype != "float32":
            out = ops.cast(out, self.compute_dtype)
        return out

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.input_dim,)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(tuple(inputs.shape) + (self.input_dim,), dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"input_dim": self.input_dim, "mask_zero": self.mask_zero})
        if self.wrap is not None:  # files without wrap load in older graphkit releases too
            config["wrap"] = self.wrap
        return config
