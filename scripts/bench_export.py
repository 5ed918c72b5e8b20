#!/usr/bin/env python
"""Export time and ONNX size of both variants: Embedding(20000, 128) at length 64, and None.

    .venv/bin/python scripts/bench_export.py [--vocab 20000] [--dim 128] [--repeat 3]

Prints one line per variant: median export seconds over --repeat exports (verification
excluded), node count, and the Keras 3 TimeDistributed comparison point from the README.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vocab", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

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


if __name__ == "__main__":
    main()
