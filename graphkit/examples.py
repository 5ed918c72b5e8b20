"""Small example models covering the shapes real models take (used by the demo, fixtures and tests).

Every builder takes a seed and returns a built Keras model with deterministic weights,
plus a matching sample-input function.
"""

from __future__ import annotations

import numpy as np


def _init(seed: int):
    import keras

    return keras.initializers.RandomNormal(stddev=0.5, seed=seed)


def sequential(seed: int = 0, vocab: int = 50, dim: int = 8, length: int = 6):
    """Sequential: Embedding -> Flatten -> Dense, fixed length."""
    import keras

    return keras.Sequential(
        [
            keras.Input((length,), dtype="int32", name="tokens"),
            keras.layers.Embedding(
                vocab, dim, embeddings_initializer=_init(seed), name="embedding"
            ),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(3, kernel_initializer=_init(seed + 1), name="head"),
        ],
        name="sequential_classifier",
    )


def masked_lstm(seed: int = 0, vocab: int = 300, dim: int = 8):
    """Functional: Embedding(mask_zero=True) -> LSTM over a variable-length (None) axis."""
    import keras

    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(
        vocab, dim, mask_zero=True, embeddings_initializer=_init(seed), name="embedding"
    )(tokens)
    x = keras.layers.LSTM(6, name="lstm", seed=seed)(x)
    out = keras.layers.Dense(2, activation="softmax", name="head")(x)
    model = keras.Model(tokens, out, name="masked_lstm")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def masked_gru_sequential(seed: int = 0, vocab: int = 40, dim: int = 5):
    """Sequential: Embedding(mask_zero=True) -> GRU; Sequential models re-derive masks on load."""
    import keras

    return keras.Sequential(
        [
            keras.Input((None,), dtype="int32", name="tokens"),
            keras.layers.Embedding(
                vocab, dim, mask_zero=True, embeddings_initializer=_init(seed), name="embedding"
            ),
            keras.layers.GRU(4, name="gru", seed=seed),
        ],
        name="masked_gru",
    )


def multi_io_shared(seed: int = 0, vocab: int = 60, dim: int = 6):
    """Functional, two inputs, two outputs, one Embedding shared by both inputs, one frozen."""
    import keras

    query = keras.Input((7,), dtype="int32", name="query")
    doc = keras.Input((None,), dtype="int32", name="doc")
    user = keras.Input((1,), dtype="int32", name="user")
    shared = keras.layers.Embedding(
        vocab, dim, embeddings_initializer=_init(seed), name="shared_embedding"
    )
    frozen = keras.layers.Embedding(
        20, 3, embeddings_initializer=_init(seed + 7), name="user_embedding"
    )
    frozen.trainable = False
    q = keras.layers.GlobalAveragePooling1D(name="q_pool")(shared(query))
    d = keras.layers.GlobalMaxPooling1D(name="d_pool")(shared(doc))
    u = keras.layers.Flatten(name="u_flat")(frozen(user))
    score = keras.layers.Dot(axes=-1, name="score")([q, d])
    merged = keras.layers.Concatenate(name="merged")([q, d, u])
    label = keras.layers.Dense(4, name="label", kernel_initializer=_init(seed + 2))(merged)
    model = keras.Model({"query": query, "doc": doc, "user": user}, [score, label], name="multi_io")
    model.compile(optimizer="sgd", loss=["mse", "mse"])
    return model


def nested(seed: int = 0, vocab: int = 80, dim: int = 4):
    """A Sequential (holding the Embedding) nested inside a Functional model, plus a top-level one."""
    import keras

    encoder = keras.Sequential(
        [
            keras.Input((None,), dtype="int32", name="enc_tokens"),
            keras.layers.Embedding(
                vocab, dim, mask_zero=True, embeddings_initializer=_init(seed), name="enc_embedding"
            ),
            keras.layers.LSTM(5, name="enc_lstm", seed=seed),
        ],
        name="encoder",
    )
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    tag = keras.Input((), dtype="int32", name="tag")
    t = keras.layers.Embedding(10, 5, embeddings_initializer=_init(seed + 3), name="tag_embedding")(
        tag
    )
    x = keras.layers.Add(name="add")([encoder(tokens), t])
    out = keras.layers.Dense(1, name="out")(x)
    return keras.Model([tokens, tag], out, name="nested")


def mixed_precision(seed: int = 0, vocab: int = 100, dim: int = 8):
    """Embedding under the mixed_float16 policy (float32 table, float16 output)."""
    import keras

    policy = keras.mixed_precision.Policy("mixed_float16")
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(
        vocab, dim, embeddings_initializer=_init(seed), dtype=policy, name="embedding"
    )(tokens)
    x = keras.layers.GlobalAveragePooling1D(dtype=policy, name="pool")(x)
    out = keras.layers.Dense(2, dtype="float32", name="out")(x)
    return keras.Model(tokens, out, name="mixed_precision")


def onehot_dense(seed: int = 0, vocab: int = 30, dim: int = 5):
    """Already in one-hot form: OneHot -> Dense with bias and tanh (folds), and a OneHot that also feeds a pooling layer (kept)."""
    import keras

    from graphkit.layers import OneHot, TimeDistributed

    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = OneHot(vocab, mask_zero=True, name="tokens_onehot")(tokens)
    x = TimeDistributed(
        keras.layers.Dense(
            dim, activation="tanh", kernel_initializer=_init(seed), bias_initializer=_init(seed + 1)
        ),
        name="tokens_projection",
    )(x)
    x = keras.layers.GRU(4, name="gru", seed=seed)(x)
    other = keras.Input((4,), dtype="int32", name="bag")
    o = OneHot(12, name="bag_onehot")(other)
    counts = keras.layers.GlobalAveragePooling1D(name="bag_counts")(o)
    proj = keras.layers.Dense(3, name="bag_dense", kernel_initializer=_init(seed + 2))(o)
    proj = keras.layers.Flatten(name="bag_flat")(proj)
    out = keras.layers.Concatenate(name="concat")([x, counts, proj])
    return keras.Model([tokens, other], out, name="onehot_dense")


def hidden_embedding(seed: int = 0):
    """An Embedding inside a user's subclassed layer (graph surgery cannot reach it), plus a normal one."""
    import keras

    from graphkit.examples_custom import TokenAndPosition

    tokens = keras.Input((6,), dtype="int32", name="tokens")
    x = TokenAndPosition(40, 6, 4, name="token_and_position")(tokens)
    y = keras.layers.Embedding(40, 4, embeddings_initializer=_init(seed), name="plain_embedding")(
        tokens
    )
    out = keras.layers.Add(name="add")([x, y])
    return keras.Model(tokens, out, name="hidden_embedding")


def transformer_classifier(seed: int = 0, vocab: int = 1500, maxlen: int = 32, dim: int = 8):
    """keras.io's text classification with a Transformer, small: a float32 token input (as
    keras.io declares it), token and position tables in a custom layer, pooling, Dense."""
    import keras

    from graphkit.examples_custom import TokenAndPosition

    keras.utils.set_random_seed(seed)
    tokens = keras.Input((maxlen,), name="tokens")  # float32, cast by the Embedding
    x = TokenAndPosition(vocab, maxlen, dim, name="tok_pos")(tokens)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    x = keras.layers.Dense(dim, activation="relu", name="hidden")(x)
    out = keras.layers.Dense(2, activation="softmax", name="classes")(x)
    return keras.Model(tokens, out, name="transformer_classifier")


def with_lambda(seed: int = 0):
    """A Lambda layer: safe mode refuses to load it."""
    import keras

    tokens = keras.Input((5,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(20, 3, embeddings_initializer=_init(seed), name="embedding")(tokens)
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(x)
    return keras.Model(tokens, x, name="with_lambda")


def conv_text_classifier(seed: int = 0, vocab: int = 50, dim: int = 4, filters: int = 4):
    """keras.io's pretrained-word-embeddings classifier, tiny: Conv1D(5) and MaxPooling1D(5)
    three times over a variable-length axis; it needs inputs of at least 149 steps."""
    import keras

    init = _init(seed)
    tokens = keras.Input((None,), dtype="int64", name="tokens")
    x = keras.layers.Embedding(vocab, dim, embeddings_initializer=init, name="embedding")(tokens)
    for i in range(3):
        x = keras.layers.Conv1D(
            filters, 5, activation="relu", kernel_initializer=init, name=f"conv{i}"
        )(x)
        if i < 2:
            x = keras.layers.MaxPooling1D(5, name=f"pool{i}")(x)
    x = keras.layers.GlobalMaxPooling1D(name="global_pool")(x)
    x = keras.layers.Dense(filters, activation="relu", kernel_initializer=init, name="dense")(x)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    out = keras.layers.Dense(3, activation="softmax", kernel_initializer=init, name="classes")(x)
    return keras.Model(tokens, out, name="conv_text_classifier")


def strided_conv_classifier(seed: int = 0, vocab: int = 50, dim: int = 4, filters: int = 4):
    """keras.io's "text classification from scratch" model, tiny: two Conv1D(7, strides=3)
    over a variable-length axis; it needs inputs of at least 25 steps."""
    import keras

    init = _init(seed)
    tokens = keras.Input((None,), dtype="int64", name="tokens")
    x = keras.layers.Embedding(vocab, dim, embeddings_initializer=init, name="embedding")(tokens)
    x = keras.layers.Dropout(0.5, name="dropout_in")(x)
    for i in range(2):
        x = keras.layers.Conv1D(
            filters, 7, strides=3, activation="relu", kernel_initializer=init, name=f"conv{i}"
        )(x)
    x = keras.layers.GlobalMaxPooling1D(name="global_pool")(x)
    x = keras.layers.Dense(filters, activation="relu", kernel_initializer=init, name="dense")(x)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    out = keras.layers.Dense(1, activation="sigmoid", kernel_initializer=init, name="predictions")(
        x
    )
    return keras.Model(tokens, out, name="strided_conv_classifier")


BUILDERS = {
    "sequential": sequential,
    "masked_lstm": masked_lstm,
    "masked_gru_sequential": masked_gru_sequential,
    "multi_io_shared": multi_io_shared,
    "nested": nested,
    "mixed_precision": mixed_precision,
    "onehot_dense": onehot_dense,
}


def sample_inputs(model, seed: int = 0, batch: int = 4, seq_len: int = 9) -> dict[str, np.ndarray]:
    """Valid index inputs for an example model: in-vocabulary, with 0-padding at the end of each row."""
    from graphkit.backends import smallest_vocab

    rng = np.random.default_rng(seed)
    out = {}
    for t in model.inputs:
        shape = [batch] + [d if d is not None else seq_len for d in t.shape[1:]]
        vocab = smallest_vocab(model)[0] or 10  # conservative: fits every Embedding/OneHot
        x = rng.integers(1, vocab, size=shape).astype(
            str(t.dtype) if "int" in str(t.dtype) else "int32"
        )
        if len(shape) >= 2 and shape[1] > 2:
            for row in range(batch):  # a run of padding at the end of some rows
                pad = int(rng.integers(0, shape[1] // 2))
                if pad:
                    x[row, shape[1] - pad :] = 0
        out[t.name] = x
    return out
