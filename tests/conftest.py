from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

import graphkit  # noqa: E402,F401  (registers graphkit's layers once Keras is imported)
from graphkit._tf import quiet_tensorflow  # noqa: E402

# As the CLI does: TensorFlow imported with the garbage collector paused, then its objects
# frozen, so that the suite's many full collections scan only the tests' own objects
# (318 s -> 294 s). It also sets the CLI's warning filters and log levels for the whole
# suite, and in-process CLI tests then find TensorFlow imported: the first-import path is
# covered by the subprocess tests (test_package.py, the CLI runs in test_cli.py & co.).
quiet_tensorflow(freeze=True)

# The fuzz tests draw the same examples on every run by default, so that the suite (and CI)
# gives the same answer twice; HYPOTHESIS_PROFILE=explore draws new ones each run, to look
# for new failures (a fuzzed .h5 that crashed the HDF5 library was found that way).
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
KERAS3_FIXTURES = [
    "sequential",
    "masked_lstm",
    "masked_gru_sequential",
    "multi_io_shared",
    "nested",
    "mixed_precision",
]


def run(model, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Call a model eagerly on named inputs; always a list of numpy outputs."""
    if len(model.inputs) == 1:
        feed = (
            inputs[next(iter(inputs))]
            if model.inputs[0].name not in inputs
            else inputs[model.inputs[0].name]
        )
    else:
        feed = {t.name: inputs[t.name] for t in model.inputs}
        if not isinstance(model.input, dict):
            feed = [feed[t.name] for t in model.inputs]
    out = model(feed, training=False)
    outs = out if isinstance(out, (list, tuple)) else [out]
    return [np.asarray(o) for o in outs]


def max_abs_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Max |a - b| over all outputs; NaN in both at the same place counts as equal, in one only as inf."""
    assert len(a) == len(b)
    worst = 0.0
    for x, y in zip(a, b):
        assert x.shape == y.shape, (x.shape, y.shape)
        x, y = x.astype("float64"), y.astype("float64")
        nx, ny = np.isnan(x), np.isnan(y)
        if np.any(nx != ny):
            return float("inf")
        diff = np.abs(np.where(nx, 0.0, x) - np.where(ny, 0.0, y))
        worst = max(worst, float(diff.max()) if diff.size else 0.0)
    return worst


# Float rounding that legitimately differs: predictions recorded on another x86-64 machine
# (AVX-512 vs AVX2 kernels, oneDNN on or off), or Keras' per-step TimeDistributed loop vs
# one MatMul over all steps with Eigen kernels (TF_ENABLE_ONEDNN_OPTS=0), whose rounding
# depends on the number of rows. Such comparisons allow this many ulps of the largest
# expected value; a model and its conversion computed in the same process stay bitwise.
ULPS = 8


def assert_within_ulps(actual, expected, ulps: int = ULPS) -> None:
    """``actual`` equals ``expected`` up to ``ulps`` float ulps of the largest expected value."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    margin = ulps * float(np.spacing(expected.dtype.type(scale)))
    worst = float(np.abs(actual.astype("float64") - expected.astype("float64")).max())
    assert worst <= margin, f"max abs diff {worst:.3g} > {ulps} ulps of {scale:.3g} ({margin:.3g})"


def embedding_tables(model) -> dict[str, np.ndarray]:
    import keras

    return {
        layer.name: layer.get_weights()[0]
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if type(layer) is keras.layers.Embedding
    }


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


def load_fixture(name: str, suffix: str = ".keras"):
    from graphkit.io import load_model

    return load_model(FIXTURES / f"{name}{suffix}")


def fixture_inputs(name: str) -> dict[str, np.ndarray]:
    return dict(np.load(FIXTURES / f"{name}.npz"))
