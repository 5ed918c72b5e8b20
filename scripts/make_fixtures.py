#!/usr/bin/env python
"""Regenerate fixtures/: small saved models and sample inputs, with fixed seeds.

.venv/bin/python scripts/make_fixtures.py            # Keras 3 fixtures
.venv/bin/pip install -e '.[fixtures]' && .venv/bin/python scripts/make_fixtures.py --legacy
                                                     # also the Keras 2 .h5 (needs tf_keras)
.venv/bin/python scripts/make_fixtures.py --only lambda   # just the Keras 3 one-hot Lambda fixtures
PYTHONPATH=/tmp/tfk .venv/bin/python scripts/make_fixtures.py --only recipe
                                                     # just the Keras 2 "Lambda(K.one_hot)" recipe .h5

tf_keras may be installed in the venv (the `fixtures` extra) or anywhere on PYTHONPATH
(pip install --target DIR --no-deps 'tf_keras>=2.21,<2.22'): the legacy scripts run in a
child process that inherits the environment.

Groups (--only, repeatable; default: keras3 and lambda, plus legacy and recipe with --legacy):
  keras3  the example models, sequential_keras3.h5, hidden_embedding, with_lambda, unknown_layer
  lambda  lambda_k3_expr.keras/.npz, lambda_k3_named.keras/.npz, lambda_marker.keras
  legacy  legacy_keras2{,_functional}.h5/.npz (tf_keras)
  recipe  recipe_td_dense, recipe_lstm, recipe_uint8_300 (.h5/.npz) and lambda_marker.h5 (tf_keras)
"""

from __future__ import annotations

import argparse
import importlib.util
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

# The blog recipe "Lambda(K.one_hot)", exactly as users wrote it (Keras 2 / tf_keras).
LEGACY_RECIPE = r"""
import os, sys
from pathlib import Path
import numpy as np
import tf_keras as k2
from tf_keras import backend as K
from tf_keras.layers import Lambda, TimeDistributed, Dense, LSTM
from tf_keras.models import Sequential

out = Path(sys.argv[1])

def OneHot(input_dim=None, input_length=None):
    def _one_hot(x, num_classes):
        return K.one_hot(K.cast(x, 'uint8'), num_classes=num_classes)
    return Lambda(_one_hot, arguments={'num_classes': input_dim}, input_shape=(input_length,))

def randomize_biases(model, rng):
    # Users left the default (zero) biases; random ones make a dropped or misplaced bias visible.
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        for w in inner.weights:
            if "bias" in w.name:
                w.assign(rng.normal(0.0, 0.5, size=w.shape).astype("float32"))

def recipe(name, build, input_dim, input_length, batch, seed):
    K.clear_session()  # a fresh session per model: the Lambda keeps its default name "lambda"
    k2.utils.set_random_seed(0)
    model = build()
    model.compile(loss='mse', optimizer='sgd')
    rng = np.random.default_rng(seed)
    randomize_biases(model, rng)
    x = rng.integers(0, input_dim, size=(batch, input_length)).astype("float32")
    if input_dim > 256:
        x[0, :3] = [256, 299, input_dim - 1]  # the uint8 cast wraps these
        x[1, -1] = 511 % input_dim
    expected = model.predict(x, verbose=0)
    model.save(str(out / f"{name}.h5"), save_format="h5")
    input_name = model.input_names[0]
    layer_names = np.array([str(layer.name) for layer in model.layers])
    np.savez(out / f"{name}.npz", **{input_name: x, "x": x, "expected": expected,
                                     "layer_names": layer_names})
    print(f"wrote fixtures/{name}.h5 and .npz (input {input_name!r}, layers {layer_names.tolist()})")

recipe("recipe_td_dense",
       lambda: Sequential([OneHot(input_dim=100, input_length=5), TimeDistributed(Dense(25))]),
       100, 5, batch=4, seed=10)
recipe("recipe_lstm",
       lambda: Sequential([OneHot(input_dim=40, input_length=6), LSTM(8),
                           Dense(3, activation='softmax')]),
       40, 6, batch=4, seed=11)
recipe("recipe_uint8_300",
       lambda: Sequential([OneHot(input_dim=300, input_length=7), TimeDistributed(Dense(4))]),
       300, 7, batch=4, seed=12)

# A Lambda whose code, when it runs, writes a marker file: loading must never run it.
marker = out / ".lambda_marker_generation"
os.environ["GRAPHKIT_MARKER"] = str(marker)
K.clear_session()
k2.utils.set_random_seed(0)
model = Sequential([
    Lambda(lambda x, num_classes: (open(__import__('os').environ.get('GRAPHKIT_MARKER', '/tmp/graphkit_marker'), 'w').close(), K.one_hot(K.cast(x, 'int32'), num_classes))[1],
           arguments={'num_classes': 20}, input_shape=(4,)),
    Dense(3),
])
model.compile(loss='mse', optimizer='sgd')
model.save(str(out / "lambda_marker.h5"), save_format="h5")
marker.unlink(missing_ok=True)
print("wrote fixtures/lambda_marker.h5")
"""

GROUPS = ("keras3", "lambda", "legacy", "recipe")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--legacy", action="store_true", help="also write the Keras 2 .h5 (tf_keras)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=GROUPS,
        help="write only this group of fixtures (repeatable); other files are left untouched",
    )
    args = parser.parse_args()
    groups = set(args.only or (GROUPS if args.legacy else ("keras3", "lambda")))
    if groups & {"legacy", "recipe"} and importlib.util.find_spec("tf_keras") is None:
        sys.exit(
            "tf_keras is needed for the Keras 2 fixtures: .venv/bin/pip install -e '.[fixtures]', "
            "or pip install --target DIR --no-deps 'tf_keras>=2.21,<2.22' and set PYTHONPATH=DIR"
        )

    FIXTURES.mkdir(exist_ok=True)
    if "keras3" in groups:
        _keras3_fixtures()
    if "lambda" in groups:
        _lambda_fixtures()
    if "legacy" in groups:
        _legacy_fixtures()
    if "recipe" in groups:
        subprocess.run([sys.executable, "-c", LEGACY_RECIPE, str(FIXTURES)], check=True)


def _keras3_fixtures() -> None:
    import keras
    import numpy as np

    from graphkit import examples

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


def _legacy_fixtures() -> None:
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


# Keras 3 one-hot Lambdas. The functions live at module level and name the module global
# `keras` (bound by _lambda_fixtures), as a user's script would: a `keras` local to a function
# would become a closure cell holding a module, which a Lambda cannot serialize.
keras = None


def to_one_hot(x, num_classes):
    """A named function: Keras 3 saves it by module and name only, not its code."""
    return keras.ops.one_hot(x, num_classes)


_ONE_HOT_UINT8 = lambda x, num_classes: keras.ops.one_hot(keras.ops.cast(x, "uint8"), num_classes)  # noqa: E731
# Writes a marker file whenever it runs: loading a model must never run it.
_ONE_HOT_MARKER = lambda x, num_classes: (  # noqa: E731
    open(__import__("os").environ.get("GRAPHKIT_MARKER", "/tmp/graphkit_marker"), "w").close(),
    keras.ops.one_hot(x, num_classes),
)[1]


def _lambda_fixtures() -> None:
    global keras
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(20)

    def randomize_biases(model):
        for w in model.weights:
            if "bias" in w.path:
                w.assign(rng.normal(0.0, 0.5, size=w.shape).astype("float32"))

    def save_with_inputs(model, name, x):
        randomize_biases(model)
        expected = keras.ops.convert_to_numpy(model(x))
        _save(model, FIXTURES / f"{name}.keras")
        np.savez(
            FIXTURES / f"{name}.npz",
            **{model.inputs[0].name: x, "x": x, "expected": expected},
            layer_names=np.array([layer.name for layer in model.layers]),
        )
        print(f"wrote fixtures/{name}.keras and .npz")

    tokens = keras.Input((6,), dtype="int32", name="tokens")
    h = keras.layers.Lambda(_ONE_HOT_UINT8, arguments={"num_classes": 30}, name="onehot_lambda")(
        tokens
    )
    out = keras.layers.TimeDistributed(keras.layers.Dense(5, name="dense"), name="td_dense")(h)
    model = keras.Model(tokens, out, name="lambda_k3_expr")
    save_with_inputs(model, "lambda_k3_expr", rng.integers(0, 30, size=(4, 6)).astype("int32"))

    tokens = keras.Input((6,), dtype="int32", name="tokens")
    h = keras.layers.Lambda(to_one_hot, arguments={"num_classes": 30}, name="onehot_fn")(tokens)
    h = keras.layers.LSTM(4, name="lstm")(h)
    out = keras.layers.Dense(2, name="head")(h)
    model = keras.Model(tokens, out, name="lambda_k3_named")
    save_with_inputs(model, "lambda_k3_named", rng.integers(0, 30, size=(4, 6)).astype("int32"))

    # Building runs the marker Lambda once (symbolically): point it at a scratch file, then delete it.
    marker = FIXTURES / ".lambda_marker_generation"
    previous = os.environ.get("GRAPHKIT_MARKER")
    os.environ["GRAPHKIT_MARKER"] = str(marker)
    try:
        tokens = keras.Input((4,), dtype="int32", name="tokens")
        h = keras.layers.Lambda(_ONE_HOT_MARKER, arguments={"num_classes": 20}, name="marker")(
            tokens
        )
        out = keras.layers.Dense(3, name="dense")(h)
        _save(keras.Model(tokens, out, name="lambda_marker"), FIXTURES / "lambda_marker.keras")
    finally:
        marker.unlink(missing_ok=True)
        if previous is None:
            del os.environ["GRAPHKIT_MARKER"]
        else:
            os.environ["GRAPHKIT_MARKER"] = previous
    print("wrote fixtures/lambda_marker.keras")


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
