#!/usr/bin/env python
"""End-to-end CUDA check, for a machine with an NVIDIA GPU and the gpu extra installed.

    .venv/bin/pip install -e '.[gpu]'   # after: .venv/bin/pip uninstall -y onnxruntime
    .venv/bin/python scripts/check_cuda.py [--vocab 20000] [--dim 128] [--batch 32] [--seq-len 64]

1. CUDAExecutionProvider is available and actually enabled for a session;
2. both variants (embedding, onehot-dense, onehot-dense fused) give outputs equal to the
   CPU provider within 1e-5;
3. median/p90 latency of each on CPU and CUDA.
Exit 0 when everything holds, 1 when outputs differ, 2 when CUDA is not usable.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vocab", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    from graphkit._tf import quiet_tensorflow

    quiet_tensorflow()
    import keras
    import numpy as np
    import onnxruntime as ort

    from graphkit import GraphkitError
    from graphkit.backends import OnnxBackend
    from graphkit.bench import time_calls
    from graphkit.conversion import convert
    from graphkit.onnx_export import export_onnx
    from graphkit.verification import synthesize

    print(f"onnxruntime {ort.__version__}, providers: {', '.join(ort.get_available_providers())}")
    keras.utils.set_random_seed(0)
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(args.vocab, args.dim, mask_zero=True, name="embedding")(tokens)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(tokens, keras.layers.Dense(8)(x))
    onehot = convert(model, "onehot-dense").model
    status = 0
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, m, kw in (
            ("embedding", model, {}),
            ("onehot-dense", onehot, {}),
            ("onehot-dense fused", onehot, {"fuse_onehot": True}),
        ):
            paths[name] = Path(tmp) / f"{name.replace(' ', '_')}.onnx"
            export_onnx(m, paths[name], **kw)
        try:
            probe = OnnxBackend(paths["embedding"], provider="cuda")
        except GraphkitError as exc:
            print(f"error: CUDA is not usable: {exc}")
            return 2
        batch = next(synthesize(probe.inputs, args.batch, args.batch, args.seq_len, 0))
        print(
            f"\nbatch {args.batch} x length {args.seq_len}, vocabulary {args.vocab}, dim {args.dim}"
        )
        print(
            f"{'variant':<20} {'max |cuda-cpu|':>15} {'cpu median ms':>14} {'cpu p90':>8} {'cuda median ms':>15} {'cuda p90':>9}"
        )
        for name, path in paths.items():
            cpu, cuda = OnnxBackend(path, provider="cpu"), OnnxBackend(path, provider="cuda")
            diff = max(
                float(np.max(np.abs(a - b))) for a, b in zip(cpu.run(batch), cuda.run(batch))
            )
            c_med, c_p90 = time_calls(lambda b=cpu: b.run(batch), args.runs, 5)
            g_med, g_p90 = time_calls(lambda b=cuda: b.run(batch), args.runs, 5)
            ok = diff <= 1e-5
            status = status or (0 if ok else 1)
            print(
                f"{name:<20} {diff:>15.3g} {c_med:>14.3f} {c_p90:>8.3f} {g_med:>15.3f} {g_p90:>9.3f}{'' if ok else '  DIFFERS'}"
            )
    print("\nCUDA check:", "passed" if status == 0 else "FAILED")
    return status


if __name__ == "__main__":
    sys.exit(main())
