#!/usr/bin/env python
"""KerasHub models through every graphkit step: the table in the README's KerasHub section.

    .venv/bin/python scripts/kerashub_matrix.py [--only Bert GPT2 ...] [--json out.json]

Each model is built offline from a tiny config with random weights (no download), saved as
.keras, then: inspect, convert --to onehot-dense, verify (synthesized inputs, then a given
.npz), convert back --to embedding (tables bit for bit, same parameter count), export both
forms to ONNX (verified by export; no Gather on a table left in the one-hot form), run.
Prints one Markdown row per model: each step's result, or its one-line error.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

TINY = dict(num_layers=2, hidden_dim=32, intermediate_dim=64)


def models() -> dict:
    """name -> function building the model (keras_hub imported lazily)."""
    import keras_hub as kh

    m = kh.models
    bert = dict(vocabulary_size=1000, num_heads=2, max_sequence_length=64, **TINY)
    gpt = dict(vocabulary_size=1000, num_heads=2, max_sequence_length=64, **TINY)
    return {
        "Bert": lambda: m.BertBackbone(**bert),
        "DistilBert": lambda: m.DistilBertBackbone(**bert),
        "Roberta": lambda: m.RobertaBackbone(**bert),
        "Albert": lambda: m.AlbertBackbone(
            vocabulary_size=1000,
            num_layers=2,
            num_heads=2,
            embedding_dim=16,
            hidden_dim=32,
            intermediate_dim=64,
            max_sequence_length=64,
        ),
        "Electra": lambda: m.ElectraBackbone(
            vocab_size=1000,
            num_layers=2,
            num_heads=2,
            embedding_dim=16,
            hidden_dim=32,
            intermediate_dim=64,
            max_sequence_length=64,
        ),
        "DebertaV3": lambda: m.DebertaV3Backbone(
            vocabulary_size=1000, num_heads=2, max_sequence_length=64, bucket_size=16, **TINY
        ),
        "XLMRoberta": lambda: m.XLMRobertaBackbone(**bert),
        "FNet": lambda: m.FNetBackbone(vocabulary_size=1000, max_sequence_length=64, **TINY),
        "GPT2": lambda: m.GPT2Backbone(**gpt),
        "OPT": lambda: m.OPTBackbone(**gpt),
        "Gemma": lambda: m.GemmaBackbone(
            vocabulary_size=1000,
            num_layers=2,
            num_query_heads=2,
            num_key_value_heads=1,
            hidden_dim=32,
            intermediate_dim=64,
            head_dim=16,
        ),
        "Llama": lambda: m.LlamaBackbone(
            vocabulary_size=1000, num_query_heads=2, num_key_value_heads=1, **TINY
        ),
        "Mistral": lambda: m.MistralBackbone(
            vocabulary_size=1000, num_query_heads=2, num_key_value_heads=1, **TINY
        ),
        "Qwen": lambda: m.QwenBackbone(
            vocabulary_size=1000, num_query_heads=2, num_key_value_heads=1, **TINY
        ),
        "Bart": lambda: m.BartBackbone(
            vocabulary_size=1000, num_heads=2, max_sequence_length=64, **TINY
        ),
        "T5": lambda: m.T5Backbone(
            vocabulary_size=1000,
            num_layers=2,
            num_heads=2,
            hidden_dim=32,
            intermediate_dim=64,
            key_value_dim=16,
        ),
        "BertTextClassifier": lambda: m.BertTextClassifier(
            m.BertBackbone(**bert), num_classes=2, preprocessor=None
        ),
        "BertMaskedLM": lambda: m.BertMaskedLM(m.BertBackbone(**bert), preprocessor=None),
        "GPT2CausalLM": lambda: m.GPT2CausalLM(m.GPT2Backbone(**gpt), preprocessor=None),
    }


STEPS = [
    "inspect",
    "convert",
    "verify",
    "verify --inputs",
    "back",
    "export",
    "export one-hot",
    "run",
]


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160]


def table_gathers(path: Path) -> list[str]:
    """Gather nodes that look a model input's values up in an initializer (a token table).
    A Gather whose indices come from shapes only (T5's relative-position buckets, computed
    from ``arange``) reads no input's values and is not counted."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    inits = {t.name for t in proto.graph.initializer}
    inputs = {i.name for i in proto.graph.input} - inits
    producer = {out: n for n in proto.graph.node for out in n.output}

    def from_input(name: str, seen: set) -> bool:
        if name in inputs:
            return True
        node = producer.get(name)
        if node is None or name in seen or node.op_type in ("Shape", "Size"):
            return False
        seen.add(name)
        return any(from_input(x, seen) for x in node.input if x)

    return [
        n.name
        for n in proto.graph.node
        if n.op_type == "Gather" and n.input[0] in inits and from_input(n.input[1], set())
    ]


def run_one(name: str, build, folder: Path) -> dict:
    import numpy as np

    import graphkit
    from graphkit.backends import KerasBackend
    from graphkit.verification import synthesize

    res: dict = {"model": name}
    src = folder / f"{name}.keras"
    hot = folder / f"{name}.onehot.keras"
    back = folder / f"{name}.back.keras"
    imports = ["keras_hub"]

    def step(label, fn):
        if any(v != "ok" and not str(v).startswith("ok") for k, v in res.items() if k in STEPS):
            res[label] = "-"  # an earlier step failed
            return None
        t = time.perf_counter()
        try:
            out = fn()
        except Exception as exc:  # noqa: BLE001 - the table records every failure
            res[label] = f"FAILED: {one_line(exc)}"
            if "--debug" in sys.argv:
                traceback.print_exc()
            return None
        res[label] = "ok"
        res[f"{label} s"] = round(time.perf_counter() - t, 1)
        return out

    model = build()
    model.save(src)
    step("inspect", lambda: graphkit.inspect_model(src, imports=imports))
    step(
        "convert",
        lambda: graphkit.convert_file(src, "onehot-dense", hot, imports=imports, force=True),
    )

    def verify_synth():
        report = graphkit.verify(src, hot, samples=16, seq_len=12, imports=imports)
        if not report.equivalent:
            raise RuntimeError(report.format().splitlines()[-1])
        return report.basis()

    basis = step("verify", verify_synth)
    if basis:
        res["verify"] = f"ok: {basis}"

    def verify_given():
        backend = KerasBackend(graphkit.load_model(src, imports=imports))
        batch = next(synthesize(backend.inputs, 4, 4, 12, seed=7))
        npz = folder / f"{name}.inputs.npz"
        np.savez(npz, **batch)
        report = graphkit.verify(src, hot, npz, imports=imports)
        if not report.equivalent:
            raise RuntimeError(report.format().splitlines()[-1])

    step("verify --inputs", verify_given)

    def convert_back():
        graphkit.convert_file(hot, "embedding", back, imports=imports, force=True)
        a = graphkit.load_model(src, imports=imports)
        b = graphkit.load_model(back, imports=imports)
        if a.count_params() != b.count_params():
            raise RuntimeError(f"{a.count_params()} parameters, back {b.count_params()}")
        report = graphkit.verify(a, b, samples=16, seq_len=12)
        if not report.exact or not report.weights.ok:
            raise RuntimeError("not bit for bit: " + report.format().splitlines()[-1])

    step("back", convert_back)
    step(
        "export",
        lambda: graphkit.export_onnx(
            src, folder / f"{name}.onnx", imports=imports, force=True, seq_len=12
        ),
    )

    def export_onehot():
        out = folder / f"{name}.onehot.onnx"
        graphkit.export_onnx(hot, out, imports=imports, force=True, seq_len=12)
        left = table_gathers(out)
        if left:
            raise RuntimeError(f"Gather on a table left: {left[:2]}")

    step("export one-hot", export_onehot)
    step(
        "run",
        lambda: graphkit.run_model(folder / f"{name}.onehot.onnx", folder / f"{name}.inputs.npz"),
    )
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="model names (default: all)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument("--debug", action="store_true", help="print tracebacks of failures")
    args = parser.parse_args()
    from graphkit._tf import quiet_tensorflow

    quiet_tensorflow()
    import keras_hub

    table = models()
    names = args.only or list(table)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            t = time.perf_counter()
            res = run_one(name, table[name], Path(tmp))
            res["seconds"] = round(time.perf_counter() - t, 1)
            results.append(res)
            print(f"{name}: {res['seconds']} s", file=sys.stderr, flush=True)
    print(f"keras-hub {keras_hub.__version__}, tiny configs, random weights\n")
    print("| model | " + " | ".join(STEPS) + " |")
    print("|---" * (len(STEPS) + 1) + "|")
    for res in results:
        cells = [str(res.get(s, "-")).replace("|", "/") for s in STEPS]
        print(f"| {res['model']} | " + " | ".join(cells) + " |")
    passed = {s: sum(1 for r in results if str(r.get(s, "")).startswith("ok")) for s in STEPS}
    print("| **passed** | " + " | ".join(f"{passed[s]}/{len(results)}" for s in STEPS) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
