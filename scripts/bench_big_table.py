#!/usr/bin/env python
"""Export a model whose table is over 2 GB, and measure both sides in the same run.

    .venv/bin/python scripts/bench_big_table.py [--vocab 600000] [--dim 1024] [--workdir DIR]

Builds ``tokens -> Embedding(vocab, dim) -> GlobalAveragePooling1D -> Dense(4)`` (2.46 GB of
float32 table at the defaults), saves it as .keras, then times each step in a fresh process,
reading its peak RSS from the kernel (``ru_maxrss`` of the finished child):

* Keras' own ``keras.saving.load_model`` of the file (the reference for export);
* ``graphkit export big.keras --onnx`` (the whole process: load, trace, write, verify);
* Keras' load + save (the reference for convert), and ``graphkit convert --to onehot-dense``;
* ``graphkit export big.onehot-dense.keras --onnx --fuse-onehot``;
* onnxruntime running the exported model once.

Prints one line per step and the ratios against the goals of issue 11 (export <= 1.2x the
time and <= 1.1x the peak RSS of Keras' load; convert <= 1.1x the peak RSS of load + save).
Needs about 6x the table's size in free disk and 3x in memory.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
GRAPHKIT = [PY, "-m", "graphkit"]

BUILD = r"""
import sys, numpy as np
from graphkit._tf import quiet_tensorflow; quiet_tensorflow()
import keras
vocab, dim, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
tokens = keras.Input((None,), dtype="int32", name="tokens")
emb = keras.layers.Embedding(vocab, dim, name="embedding", embeddings_initializer="zeros")
x = keras.layers.GlobalAveragePooling1D(name="pool")(emb(tokens))
model = keras.Model(tokens, keras.layers.Dense(4, name="head")(x), name="big")
rng = np.random.default_rng(0)
table = np.empty((vocab, dim), np.float32)
for start in range(0, vocab, 50000):  # filled in slices: no second full-size temporary
    stop = min(vocab, start + 50000)
    table[start:stop] = rng.standard_normal((stop - start, dim), dtype=np.float32)
emb.embeddings.assign(table)
del table
model.save(path)
"""

KERAS_LOAD = r"""
import sys
from graphkit._tf import quiet_tensorflow; quiet_tensorflow()
import keras
keras.saving.load_model(sys.argv[1])
"""

KERAS_LOAD_SAVE = r"""
import sys
from graphkit._tf import quiet_tensorflow; quiet_tensorflow()
import keras
keras.saving.load_model(sys.argv[1]).save(sys.argv[2])
"""

ORT_RUN = r"""
import sys, numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.arange(64, dtype=np.int32).reshape(2, 32)
print(s.run(None, {s.get_inputs()[0].name: x})[0].shape)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vocab", type=int, default=600_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--only",
        choices=("all", "export"),
        default="all",
        help="export: only Keras' load and graphkit export, each twice, alternating",
    )
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="graphkit-big-"))
    work.mkdir(parents=True, exist_ok=True)
    big = work / "big.keras"
    print(
        f"table {args.vocab} x {args.dim} float32 = {args.vocab * args.dim * 4 / 1e9:.2f} GB; files in {work}"
    )
    if not big.exists():
        measured(
            "build and save the model", [PY, "-c", BUILD, str(args.vocab), str(args.dim), str(big)]
        )
    if args.only == "export":
        load = [PY, "-c", KERAS_LOAD, str(big)]
        export = [*GRAPHKIT, "export", str(big), "--onnx", "-o", str(work / "big.onnx"), "--force"]
        pairs = [
            (measured("keras load_model", load), measured("graphkit export --onnx", export))
            for _ in range(2)
        ]
        (ls, lr), (es, er) = min(p[0] for p in pairs), min(p[1] for p in pairs)
        print(f"\nbest of 2: export vs Keras load: time {es / ls:.2f}x, peak RSS {er / lr:.2f}x")
        return
    results = {}
    for label, argv in (
        ("keras load_model", [PY, "-c", KERAS_LOAD, str(big)]),
        (
            "graphkit export --onnx",
            [*GRAPHKIT, "export", str(big), "--onnx", "-o", str(work / "big.onnx"), "--force"],
        ),
        ("onnxruntime: load and run once", [PY, "-c", ORT_RUN, str(work / "big.onnx")]),
        (
            "keras load_model + save",
            [PY, "-c", KERAS_LOAD_SAVE, str(big), str(work / "resaved.keras")],
        ),
        (
            "graphkit convert --to onehot-dense",
            [
                *GRAPHKIT,
                "convert",
                str(big),
                "--to",
                "onehot-dense",
                "-o",
                str(work / "big.onehot-dense.keras"),
                "--force",
            ],
        ),
        (
            "graphkit export onehot-dense --fuse-onehot",
            [
                *GRAPHKIT,
                "export",
                str(work / "big.onehot-dense.keras"),
                "--onnx",
                "--fuse-onehot",
                "-o",
                str(work / "big.fused.onnx"),
                "--force",
            ],
        ),
    ):
        results[label] = measured(label, argv)
    load_s, load_rss = results["keras load_model"]
    exp_s, exp_rss = results["graphkit export --onnx"]
    ls_s, ls_rss = results["keras load_model + save"]
    conv_s, conv_rss = results["graphkit convert --to onehot-dense"]
    print()
    print(
        f"export vs Keras load: time {exp_s / load_s:.2f}x (goal <= 1.2x), peak RSS {exp_rss / load_rss:.2f}x (goal <= 1.1x)"
    )
    print(
        f"convert vs Keras load+save: peak RSS {conv_rss / ls_rss:.2f}x (goal <= 1.1x), time {conv_s / ls_s:.2f}x"
    )


WRAP = r"""
import resource, subprocess, sys, json
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"rc": done.returncode, "rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "out": done.stdout[-3000:], "err": done.stderr[-3000:]}))
"""


def measured(label: str, argv: list[str]) -> tuple[float, float]:
    """Run ``argv`` under a fresh wrapper process, so its peak RSS is its own."""
    import json

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    wrapped = subprocess.run([PY, "-c", WRAP, *argv], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    info = json.loads(wrapped.stdout.strip().splitlines()[-1])
    if info["rc"] != 0:
        print(f"{label}: FAILED (exit {info['rc']})\n{info['out']}\n{info['err']}")
        sys.exit(1)
    gib = info["rss_kib"] / (1 << 20)
    print(f"{label:<46} {seconds:7.1f} s   peak RSS {gib:6.2f} GiB")
    return seconds, gib


if __name__ == "__main__":
    main()
