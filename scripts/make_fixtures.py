#!/usr/bin/env python
"""Regenerate fixtures/: small saved models and sample inputs, with fixed seeds.

.venv/bin/python scripts/make_fixtures.py            # Keras 3 fixtures
.venv/bin/pip install -e '.[fixtures]' && .venv/bin/python scripts/make_fixtures.py --legacy
                                                     # also the Keras 2 .h5 (needs tf_keras)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

LEGACY = r"""
import os, sys
import numpy as np
import tf_keras as k2
k2.utils.set_random_seed(0)
model = k2.Sequential([
    k2.layers.Embedding(50, 6, mask_zero=True, input_length=None, name="embedding"),
    k2.layers.LSTM(4, name="lstm"),
    k2.layers.Dense(2, activation="softmax", name="head"),
], name="legacy_lstm")
model.build((None, None))
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
rng = np.random.default_rng(0)
x = rng.integers(1, 50, size=(5, 8)).astype("int32")
x[0, 5:] = 0; x[3, 2:] = 0
expected = model.predict(x, verbose=0)
model.save(sys.argv[1], save_format="h5")
np.savez(sys.argv[2], embedding_input=x, expected=expected)

# Functional: two inputs sharing one masked Embedding, a GRU and a Bidirectional LSTM.
a = k2.Input((None,), name="a")
b = k2.Input((None,), name="b")
shared = k2.layers.Embedding(40, 5, mask_zero=True, name="shared_embedding")
ga = k2.layers.GRU(3, name="gru")(shared(a))
lb = k2.layers.Bidirectional(k2.layers.LSTM(2, name="lstm"), name="bilstm")(shared(b))
out = k2.layers.Dense(2, name="out")(k2.layers.Concatenate(name="concat")([ga, lb]))
functional = k2.Model([a, b], out, name="legacy_functional")
xa = rng.integers(1, 40, size=(4, 6)).astype("float32"); xa[1, 3:] = 0
xb = rng.integers(1, 40, size=(4, 5)).astype("float32"); xb[2, 1:] = 0
expected = functional.predict({"a": xa, "b": xb}, verbose=0)
functional.save(sys.argv[3], save_format="h5")
np.savez(sys.argv[4], a=xa, b=xb, expected=expected)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--legacy", action="store_true", help="also write the Keras 2 .h5 (tf_keras)"
    )
    args = parser.parse_args()

    import keras
    import numpy as np

    from graphkit import examples

    FIXTURES.mkdir(exist_ok=True)
    keras.utils.set_random_seed(0)
    for name, build in examples.BUILDERS.items():
        model = build(seed=0)
        inputs = examples.sample_inputs(model, seed=1)
        _save(model, FIXTURES / f"{name}.keras")
        np.savez(FIXTURES / f"{name}.npz", **inputs)
        print(f"wrote fixtures/{name}.keras and .npz")
    _save(examples.sequential(seed=3), FIXTURES / "sequential_keras3.h5")
    _save(examples.hidden_embedding(seed=0), FIXTURES / "hidden_embedding.keras")
    _save(examples.with_lambda(seed=0), FIXTURES / "with_lambda.keras")
    _save(_unknown_layer_model(), FIXTURES / "unknown_layer.keras")
    print(
        "wrote fixtures/sequential_keras3.h5, hidden_embedding.keras, with_lambda.keras, unknown_layer.keras"
    )
    if args.legacy:
        subprocess.run(
            [
                sys.executable,
                "-c",
                LEGACY,
                str(FIXTURES / "legacy_keras2.h5"),
                str(FIXTURES / "legacy_keras2.npz"),
                str(FIXTURES / "legacy_keras2_functional.h5"),
                str(FIXTURES / "legacy_keras2_functional.npz"),
            ],
            check=True,
        )
        print("wrote fixtures/legacy_keras2{,_functional}.h5 and .npz (tf_keras)")


def _unknown_layer_model():
    """A model whose custom layer class exists only here: loading it must name the class."""
    import keras

    @keras.saving.register_keras_serializable(package="fixture_only")
    class Mystery(keras.layers.Layer):
        def call(self, x):
            return x

    tokens = keras.Input((4,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(10, 2, name="embedding")(tokens)
    return keras.Model(tokens, Mystery(name="mystery")(x), name="unknown_layer")


def _save(model, path: Path) -> None:
    if path.exists():
        path.unlink()
    model.save(str(path))


if __name__ == "__main__":
    main()
