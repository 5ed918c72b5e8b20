#!/usr/bin/env python
"""Write the benchmark model: Embedding(20000, 128) -> pooling -> Dense, for `graphkit bench`.

.venv/bin/python scripts/make_bench_model.py /tmp/bench.keras [--vocab 20000] [--dim 128] [--length 64]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output")
    parser.add_argument("--vocab", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--length", type=int, default=0, help="fixed length; 0 = variable (None)")
    args = parser.parse_args()

    from graphkit._tf import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from graphkit.io import save_model

    keras.utils.set_random_seed(0)
    tokens = keras.Input((args.length or None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(args.vocab, args.dim, mask_zero=True, name="embedding")(tokens)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    out = keras.layers.Dense(8, name="head")(x)
    save_model(keras.Model(tokens, out, name="bench"), args.output, force=True)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
