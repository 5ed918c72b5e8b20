#!/usr/bin/env python
"""Export time and ONNX size of both variants: Embedding(20000, 128) at length 64, and None.

    .venv/bin/python scripts/bench_export.py [--vocab 20000] [--dim 128] [--repeat 3] [--bert]

Prints one line per variant: median export seconds over --repeat exports (verification
excluded), node count, and the Keras 3 TimeDistributed comparison point from the README.

Then the whole process, as a user runs it, against Keras' own exporter on the same saved
model (both in fresh interpreters, alternating, best of --repeat), for ONNX and LiteRT:
``graphkit export m.keras --onnx|--litert`` (load, trace, convert, write, and verify in
onnxruntime or LiteRT) versus ``keras.saving.load_model(m)`` + ``model.export(path,
format="onnx"|"litert")`` (no check), with the time of each stage of both. ``--bert``: only
that comparison, on a KerasHub BertBackbone (4 layers, hidden 128, vocabulary 5000).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vocab", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--bert", action="store_true", help="whole processes only, on a KerasHub BertBackbone"
    )
    args = parser.parse_args()
    if not args.bert:
        _variants(args)
    return args


def _variants(args) -> None:
    from graphkit._tf import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from graphkit.conversion import convert
    from graphkit.onnx_export import export_onnx

    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        for length in (64, None):
            tokens = keras.Input((length,), dtype="int32", name="tokens")
            x = keras.layers.Embedding(args.vocab, args.dim, name="embedding")(tokens)
            x = keras.layers.GlobalAveragePooling1D()(x)
            model = keras.Model(tokens, keras.layers.Dense(8)(x))
            variants = {"embedding": model, "onehot-dense": convert(model, "onehot-dense").model}
            times = {}
            for name, m in variants.items():
                seconds, nodes = [], None
                for i in range(args.repeat):
                    rep = export_onnx(m, Path(tmp) / f"{name}{i}.onnx", verify=(i == 0), force=True)
                    seconds.append(rep.export_seconds)
                    nodes = rep.nodes
                times[name] = statistics.median(seconds)
                print(
                    f"length {length!s:>4}  {name:<13} export {times[name]:.2f} s (median of {args.repeat}), "
                    f"{nodes} ONNX nodes, verified equivalent"
                )
            print(
                f"length {length!s:>4}  onehot-dense / embedding export time: {times['onehot-dense'] / times['embedding']:.2f}x"
            )


# Keras' side as a user writes it: no graphkit import (graphkit's CLI pauses the garbage
# collector while TensorFlow imports; a plain script does not). TF_CPP_MIN_LOG_LEVEL=3 is set.
KERAS_EXPORT = r"""
import sys, time
start = time.perf_counter()
import keras, numpy as np
imported = time.perf_counter()
model = keras.saving.load_model(sys.argv[1])
if sys.argv[3] == "onnx":  # Keras' ONNX exporter refuses a model never called (LiteRT's not)
    feed = {t.name: np.ones((1, 64), t.dtype) for t in model.inputs}
    model(feed if len(feed) > 1 else next(iter(feed.values())))
loaded = time.perf_counter()
model.export(sys.argv[2], format=sys.argv[3], verbose=False)
done = time.perf_counter()
print(f"tensorflow {imported - start:.2f} s, load {loaded - imported:.2f} s, "
      f"export {done - loaded:.2f} s", file=sys.stderr)
"""

# KerasHub's BERT at the size the docs quote (scripts/bench_export.py --bert)
BERT = dict(
    vocabulary_size=5000,
    num_layers=4,
    num_heads=4,
    hidden_dim=128,
    intermediate_dim=512,
    max_sequence_length=128,
)


def _saved_model(path: Path, vocab: int, dim: int, bert: bool) -> str:
    import keras

    if bert:
        import keras_hub

        keras_hub.models.BertBackbone(**BERT).save(path)
        return "KerasHub BertBackbone({})".format(", ".join(f"{k}={v}" for k, v in BERT.items()))
    tokens = keras.Input((64,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocab, dim, name="embedding")(tokens)
    x = keras.layers.GlobalAveragePooling1D()(x)
    keras.Model(tokens, keras.layers.Dense(8)(x)).save(path)
    return f"Embedding({vocab}, {dim}) length 64"


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    def of(*names):
        for name in names:
            try:
                return f"{name} {version(name)}"
            except PackageNotFoundError:
                continue
        return f"{names[0]} (not installed)"

    return ", ".join(
        of(*n)
        for n in (
            ("tensorflow", "tensorflow-cpu"),
            ("keras",),
            ("tf2onnx",),
            ("onnxruntime", "onnxruntime-gpu"),
            ("ml_dtypes",),
            ("numpy",),
        )
    )


def whole_process(vocab: int, dim: int, repeat: int, bert: bool = False) -> None:
    """Wall time of the graphkit CLI process versus Keras' own export, same model file, each
    in a fresh interpreter, alternating (so that a busy machine slows both alike); best of
    ``repeat``. graphkit's stages come from ``--debug``; Keras' from timers in its script."""
    import os
    import subprocess
    import sys
    import time

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    print(f"whole processes ({_versions()})")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.keras"
        what = _saved_model(path, vocab, dim, bert)

        def timed(argv):
            start = time.perf_counter()
            done = subprocess.run(argv, check=True, capture_output=True, env=env, text=True)
            lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
            return time.perf_counter() - start, (lines[-1] if lines else "")

        for fmt, flag, suffix in (("onnx", "--onnx", "onnx"), ("litert", "--litert", "tflite")):
            ours_argv = [sys.executable, "-m", "graphkit", "export", str(path), flag]
            ours_argv += ["-o", str(Path(tmp) / f"g.{suffix}"), "--force", "--debug"]
            theirs_argv = [sys.executable, "-c", KERAS_EXPORT, str(path)]
            theirs_argv += [str(Path(tmp) / f"k.{suffix}"), fmt]
            ours, theirs = [], []
            for _ in range(repeat):  # alternating: load from elsewhere hits both
                ours.append(timed(ours_argv))
                theirs.append(timed(theirs_argv))
            best_ours, best_theirs = min(ours), min(theirs)
            print(
                f"{fmt:>6}, {what}, best of {repeat}: "
                f"graphkit export {best_ours[0]:.2f} s (verified), "
                f"Keras model.export {best_theirs[0]:.2f} s (unchecked): "
                f"{best_ours[0] / best_theirs[0]:.2f}x"
            )
            print(f"        graphkit {best_ours[1]}")
            print(f"        Keras    {best_theirs[1]}")


if __name__ == "__main__":
    args = main()
    whole_process(args.vocab, args.dim, args.repeat, args.bert)
