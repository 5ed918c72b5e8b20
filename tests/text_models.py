"""The targets issues' two tiny text models, shared by the ONNX-target and LiteRT tests."""

from __future__ import annotations

import keras


def text_model(kind: str, vocab: int, dim: int, length: int):
    """A bag of embeddings (Embedding -> GlobalAveragePooling1D -> Dense) or a conv text
    classifier (Embedding -> Conv1D -> GlobalMaxPooling1D -> Dense), seeded weights."""
    init = keras.initializers.RandomNormal(seed=1)
    tokens = keras.Input((length,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocab, dim, embeddings_initializer=init, name="emb")(tokens)
    if kind == "bag":
        x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    else:
        x = keras.layers.Conv1D(3, 3, activation="relu", kernel_initializer=init, name="conv")(x)
        x = keras.layers.GlobalMaxPooling1D(name="pool")(x)
    out = keras.layers.Dense(4, kernel_initializer=init, name="head")(x)
    return keras.Model(tokens, out, name=kind)
