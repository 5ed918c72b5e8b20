"""A user-style custom layer that hides an Embedding (for the example models and tests)."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="graphkit_examples")
class TokenAndPosition(keras.layers.Layer):
    """Token embedding plus learned position embedding: a subclassed layer, opaque to graph surgery."""

    def __init__(self, vocab: int, length: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.vocab, self.length, self.dim = vocab, length, dim
        self.token = keras.layers.Embedding(vocab, dim, name="token")
        self.position = keras.layers.Embedding(length, dim, name="position")

    def build(self, input_shape):
        self.token.build(input_shape)
        self.position.build((self.length,))
        self.built = True

    def call(self, inputs):
        positions = keras.ops.arange(self.length)
        return self.token(inputs) + self.position(positions)

    def get_config(self):
        return {**super().get_config(), "vocab": self.vocab, "length": self.length, "dim": self.dim}
