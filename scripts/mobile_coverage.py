#!/usr/bin/env python
"""Coverage of mobile execution providers per export form and target, per onnxruntime's checker.

    .venv/bin/python scripts/mobile_coverage.py [--vocab 20000] [--dim 64] [--length 64]

The issue's two models (seed 0): a bag of embeddings (Embedding -> GlobalAveragePooling1D ->
Dense(4)) and a conv text classifier (Embedding -> Conv1D(32, 5) -> GlobalMaxPooling1D ->
Dense(4)), input fixed to 1 x length. Each in three forms (embedding, onehot-dense,
onehot-dense --fuse-onehot) is exported, verified in onnxruntime, three ways: with
``--fixed-shape --index-dtype int32`` only, with ``--target nnapi`` and with ``--target
coreml``. Every file is then checked for both providers with onnxruntime's mobile usability
checker (``graphkit.onnx_targets.coverage``: basic optimizations, shape inference, the
provider's partitioning, as ``python -m onnxruntime.tools.check_onnx_model_mobile_usability``
does). Prints a markdown table: nodes handled / total, partitions, the ops each provider lacks,
and the form of the file's table lookup with its multiply-adds per token (``Coverage.lookups``:
Gather or GatherND copy a row, 0 MACs; one-hot x table costs vocab x dim).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _models(vocab: int, dim: int, length: int):
    import keras

    keras.utils.set_random_seed(0)
    out = {}
    for kind in ("bag", "conv"):
        tokens = keras.Input((length,), dtype="int32", name="tokens")
        x = keras.layers.Embedding(vocab, dim, name="embedding")(tokens)
        if kind == "bag":
            x = keras.layers.GlobalAveragePooling1D()(x)
        else:
            x = keras.layers.Conv1D(32, 5, activation="relu")(x)
            x = keras.layers.GlobalMaxPooling1D()(x)
        out[kind] = keras.Model(tokens, keras.layers.Dense(4)(x), name=kind)
    return out


def _cell(cov) -> str:
    text = (
        f"{cov.handled}/{cov.nodes}, {cov.partitions} partition{'s' if cov.partitions != 1 else ''}"
    )
    if cov.unsupported_ops:
        text += f" (lacks {', '.join(cov.unsupported_ops)})"
    if cov.dynamic_nodes:
        text += f" ({cov.dynamic_nodes} on dynamic shapes)"
    return text


def _lookups(cov) -> str:
    return "; ".join(f"{lk.form}, {lk.macs_per_token:,} MACs/token" for lk in cov.lookups)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vocab", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--length", type=int, default=64)
    args = parser.parse_args()

    from graphkit._tf import quiet_tensorflow

    quiet_tensorflow()
    from graphkit.conversion import convert
    from graphkit.onnx_export import export_onnx
    from graphkit.onnx_targets import TARGETS, coverage

    start = time.perf_counter()
    shape = f"1x{args.length}"
    print(
        f"Embedding({args.vocab}, {args.dim}), input fixed to {shape}; NNAPI and CoreML MLProgram "
        "per onnxruntime's mobile usability checker (nodes handled / total, partitions); the "
        "lookup's form and multiply-adds per token in the file\n"
    )
    providers = [TARGETS[t].provider for t in TARGETS]
    print("| model | form | export options | " + " | ".join(providers) + " | lookup |")
    print("|---|---|---|" + "---|" * len(providers) + "---|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, model in _models(args.vocab, args.dim, args.length).items():
            onehot = convert(model, "onehot-dense").model
            forms = [("embedding", model, False), ("onehot-dense", onehot, False)]
            forms.append(("onehot-dense", onehot, True))
            for form, m, fuse in forms:
                for target in (None, *TARGETS):
                    path = Path(tmp) / f"{kind}-{form}-{fuse}-{target}.onnx"
                    export_onnx(
                        m,
                        path,
                        fuse_onehot=fuse,
                        index_dtype="int32",
                        fixed_shapes={"tokens": (1, args.length)},
                        target=target,
                        samples=16,
                    )
                    options = f"`--fixed-shape tokens={shape} " + (
                        f"--target {target}`" if target else "--index-dtype int32`"
                    )
                    if fuse:
                        options = options.replace("`--fixed", "`--fuse-onehot --fixed")
                    found = [coverage(path, t) for t in TARGETS]
                    cells = [_cell(cov) for cov in found] + [_lookups(found[0])]
                    print(f"| {kind} | {form} | {options} | " + " | ".join(cells) + " |")
    print(f"\n({time.perf_counter() - start:.0f} s; every export verified against Keras)")


if __name__ == "__main__":
    main()
