"""The LiteRT forms table: Embedding(2000, 32) -> pooling -> Dense at batch 1 x 16, converted to
.tflite in each graphkit form, with its ops and GPU-delegate verdict (docs/litert.md).

    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python scripts/litert_forms.py

Each form goes through ``graphkit.export.litert.export_litert`` (frozen trace, TensorFlow's
TFLite converter, verified in the LiteRT runtime against Keras) with the input fixed at 1 x 16,
twice: as Keras traces it, and with ``target="gpu-delegate"`` (lookups fitted to the GPU
delegate's rules, ``graphkit.export.litert_gpu``). Each file's verdict puts TensorFlow's
Analyzer beside graphkit's op check (``graphkit.export.litert_inspect``). The arithmetic one-hot (``Relu(1 - d*d)``) is an
ONNX pass only (``graphkit/onnx_passes/onehot_arithmetic.py``): there is no Keras form of it to
convert, so it has no row.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VOCAB, DIM, LENGTH = 2000, 32, 16


def bag_model():
    """Embedding(2000, 32) -> GlobalAveragePooling1D -> Dense(8), seeded."""
    import keras

    keras.utils.set_random_seed(0)
    tokens = keras.Input((LENGTH,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(VOCAB, DIM, name="embedding")(tokens)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    y = keras.layers.Dense(8, name="logits")(x)
    return keras.Model(tokens, y, name="bag")


def op_summary(ops: list[str]) -> str:
    """Ops in first-seen order, with a count where an op repeats."""
    counts = Counter(ops)
    return ", ".join(f"{op} x{counts[op]}" if counts[op] > 1 else op for op in dict.fromkeys(ops))


def rows(reasons: set[str]) -> list[tuple[str, str, str, str, str]]:
    """One row per form; the op check's reasons are added to ``reasons``."""
    from graphkit._tf import quiet_tensorflow

    quiet_tensorflow()
    from graphkit.conversion import convert
    from graphkit.export.litert import export_litert
    from graphkit.export.litert_inspect import gpu_delegate, read_ops

    model = bag_model()
    forms = [
        ("embedding (Keras Embedding)", model),
        ('one-hot (`convert(model, "onehot-dense")`)', convert(model, "onehot-dense").model),
    ]
    out = []
    with tempfile.TemporaryDirectory() as folder:
        for label, form in forms:
            for target in (None, "gpu-delegate"):
                path = Path(folder) / "model.tflite"
                export_litert(
                    form, path, force=True, fixed_shapes={"tokens": (1, LENGTH)}, target=target
                )
                data = path.read_bytes()
                verdict = gpu_delegate(data)
                ops = read_ops(data)
                issues = ", ".join(
                    f"{i.op} x{i.count}" if i.count > 1 else i.op for i in verdict.issues
                )
                reasons.update({f"{i.op}: {i.reason}" for i in verdict.issues})
                check = "supported" if verdict.op_check_passes else "not supported"
                name = f"{label}, `--target gpu-delegate`" if target else f"{label}, as traced"
                out.append((name, op_summary(ops), verdict.analyzer, check, issues or "none"))
    return out


def main() -> None:
    import tensorflow as tf

    lines = [
        f"| form | ops (TF {tf.__version__} converter, batch 1 x {LENGTH}) | Analyzer's GPU verdict "
        "| graphkit's op check | ops the op check refuses |",
        "|---|---|---|---|---|",
    ]
    reasons: set[str] = set()
    lines += ["| " + " | ".join(row) + " |" for row in rows(reasons)]
    lines += ["", "Why the op check refuses them (TF gpu_compatibility.cc's messages):", ""]
    lines += [f"- {reason}" for reason in sorted(reasons)]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
