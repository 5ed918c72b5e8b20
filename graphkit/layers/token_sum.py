"""``TokenSum``: the sum over a token axis, then a Dense's bias and activation."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="graphkit", name="TokenSum")
class TokenSum(keras.layers.Layer):
    """``(..., tokens, units) -> (..., units)``: sum over the token axis, + bias, activation.

    ``Embedding(table=kernel)`` then ``TokenSum(bias, activation)`` computes what a
    ``count`` encoding (``CategoryEncoding``/``IntegerLookup``/``StringLookup``) followed by
    ``Dense(kernel, bias, activation)`` computes: ``counts @ kernel`` is the sum of the
    tokens' kernel rows. Only the float summation order differs (a token counted 3 times is
    ``k + k + k`` here, ``3 * k`` there), so the two agree within a few ulps, not bit for bit.
    The bias is added once, after the sum, as Dense adds it after the product.
    """

    def __init__(
        self,
        use_bias: bool = True,
        activation=None,
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.use_bias = bool(use_bias)
        self.activation = keras.activations.get(activation)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.bias = None

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                "TokenSum: expected an input of shape (..., tokens, units) with a known "
                f"units axis, received input_shape={tuple(input_shape)}"
            )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(input_shape[-1],), initializer=self.bias_initializer
            )

    def call(self, inputs):
        # Dense's order: product (here the sum of the rows), then bias, then activation.
        x = ops.sum(inputs, axis=-2)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-2]) + (input_shape[-1],)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "use_bias": self.use_bias,
                "activation": keras.activations.serialize(self.activation),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
