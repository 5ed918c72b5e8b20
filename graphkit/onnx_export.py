"""``graphkit.export_onnx``: Keras model -> ONNX through tf2onnx, checked, optionally rewritten, verified.

tf2onnx's ``from_keras`` fails on Keras 3 models, so the model is traced through a
``tf.function`` with an input signature (``from_function``), which is also what
Keras' own exporter does. Axes that are None in Keras stay dynamic. graphkit's
TimeDistributed(Dense) is the Dense on the last axis, so the onehot-dense variant
exports as OneHot -> MatMul with no per-step unrolling and no Loop.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphkit.errors import GraphkitError, one_line

DEFAULT_OPSET = 17
VERIFY_SAMPLES = 64


class NotEquivalentError(GraphkitError):
    """The exported ONNX model does not compute what the Keras model computes (exit 1)."""

    def __init__(self, message: str, report):
        super().__init__(message)
        self.report = report


@dataclass
class ExportReport:
    source: str
    output: str | None
    opset: int
    nodes: int
    op_counts: dict[str, int]
    export_seconds: float
    size_bytes: int = 0
    passes: list[Any] = field(default_factory=list)  # onnx_passes.PassResult, in the order run
    verify: Any = None
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    repairs: list[Any] = field(default_factory=list)  # engine Findings of the repair rules

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "output": self.output,
            "opset": self.opset,
            "nodes": self.nodes,
            "op_counts": self.op_counts,
            "export_seconds": round(self.export_seconds, 3),
            "size_bytes": self.size_bytes,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "passes": [
                {"name": p.name, "applied": p.applied, "skipped": p.skipped, "notes": p.notes}
                for p in self.passes
            ],
            "repairs": [f.to_dict() for f in self.repairs],
            "verify": self.verify.to_dict() if self.verify is not None else None,
        }

    def format(self) -> str:
        """What ``graphkit export`` prints."""
        lines = [
            f"{self.source} -> {self.output}",
            f"  opset {self.opset}, {self.nodes} nodes, {self.size_bytes:,} bytes, "
            f"exported in {self.export_seconds:.1f} s",
            "  ops: " + ", ".join(f"{op} {n}" for op, n in self.op_counts.items()),
        ]
        for f in self.repairs:
            if f.status == "repaired":
                lines.append(f"  repaired {f.path} ({f.layer_class}): {'; '.join(f.notes)}")
            else:
                lines.append(f"  kept {f.path} ({f.layer_class}): {f.reason}")
        for p in self.passes:
            # sorted: tf2onnx's node order, and so the passes' order, varies between runs
            lines += [f"  {p.name}: {line}" for line in sorted(p.applied)]
            lines += [f"  {p.name}: skipped {line}" for line in sorted(p.skipped)]
            lines += [f"  note: {note}" for note in p.notes]
            if not (p.applied or p.skipped):
                lines.append(f"  {p.name}: nothing to rewrite in this model")
        if self.verify is None:
            lines.append("  not verified (--no-verify)")
        else:
            worst = max((o.max_abs for o in self.verify.outputs), default=0.0)
            fed = self.verify.describe_inputs()
            lines.append(
                f"  verified in onnxruntime on {self.verify.samples} samples ({fed}): "
                f"equivalent, max abs error {worst:.3g}"
            )
            lines += [f"  note: {note}" for note in self.verify.notes]
        return "\n".join(lines)


def to_onnx_proto(model, opset: int = DEFAULT_OPSET):
    """Convert a Keras model to an ``onnx.ModelProto`` (nothing written to disk)."""
    import tf2onnx

    from graphkit._tf import _stderr_fd_silenced
    from graphkit.backends import serving_function
    from graphkit.inspect import output_names

    serve, specs = serving_function(model)
    try:
        with _stderr_fd_silenced():
            proto, _ = tf2onnx.convert.from_function(serve, input_signature=specs, opset=opset)
    except Exception as exc:
        raise GraphkitError(
            f"tf2onnx cannot convert model {model.name!r}: {one_line(exc, with_type=False)}"
        ) from exc
    _rename_outputs(proto, output_names(model))
    proto.producer_name = "graphkit"
    return proto


def _rename_outputs(proto, names: list[str]) -> None:
    """tf2onnx names outputs Identity:0...; give them the Keras output names.

    Outputs are matched by name in verify, so every output gets its Keras name; an
    internal tensor that already has that name is renamed out of the way first.
    """
    graph = proto.graph
    if len(names) != len(graph.output) or len(set(names)) != len(names):
        raise GraphkitError(
            f"cannot name the ONNX outputs after the model's outputs {names}: "
            f"tf2onnx made {len(graph.output)} outputs"
        )
    graphs = list(_all_graphs(graph))  # Loop/If/Scan bodies read outer names too
    tensors = {t for g in graphs for n in g.node for t in (*n.input, *n.output)}
    tensors |= {v.name for g in graphs for v in (*g.input, *g.initializer, *g.value_info)}
    if {i.name for i in graph.input} & set(names):
        clash = sorted({i.name for i in graph.input} & set(names))
        raise GraphkitError(f"an output and an input are both named {clash[0]!r}")

    def rename(old: str, new: str) -> None:
        for g in graphs:
            for node in g.node:
                for i, o in enumerate(node.output):
                    if o == old:
                        node.output[i] = new
                for i, o in enumerate(node.input):
                    if o == old:
                        node.input[i] = new
            for value in (*g.output, *g.value_info):
                if value.name == old:
                    value.name = new

    def spare(base: str) -> str:
        name, k = base, 1
        while name in tensors:
            name, k = f"{base}_{k}", k + 1
        tensors.add(name)
        return name

    # Two steps, so that outputs can also swap names: first out of the way, then final.
    staged = []
    for out in list(graph.output):
        staged.append(spare(f"{out.name}__graphkit_out"))
        rename(out.name, staged[-1])
    for old, new in zip(staged, names):
        if new in tensors:  # an internal tensor holds the name: it gets another one
            rename(new, spare(f"{new}__internal"))
        rename(old, new)
        tensors.add(new)


def _all_graphs(graph):
    """``graph`` and every subgraph below it (node attributes of type GRAPH or GRAPHS)."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _all_graphs(attr.g)
            for sub in attr.graphs:
                yield from _all_graphs(sub)


def check_proto(proto) -> None:
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise GraphkitError(
            f"the exported model fails onnx.checker: {one_line(exc, with_type=False)}"
        ) from exc


def default_onnx_path(source: str | os.PathLike) -> Path:
    src = Path(source)
    return src.with_suffix(".onnx")


def export_onnx(
    model,
    output: str | os.PathLike | None = None,
    *,
    opset: int = DEFAULT_OPSET,
    passes: Sequence[str] = (),
    fuse_onehot: bool = False,
    lower_gather: bool = False,
    verify: bool = True,
    force: bool = False,
    samples: int = VERIFY_SAMPLES,
    seq_len: int = 16,
    unsafe: bool = False,
    imports=(),
    onehot_lambdas=(),
) -> ExportReport:
    """Export ``model`` (Keras model or .keras/.h5 path) to ONNX at ``output``.

    The ONNX model is rewritten by the ONNX passes named in ``passes`` (registered in
    ``graphkit.onnx_passes.PASSES``, run in order; ``fuse_onehot=True`` and
    ``lower_gather=True`` are aliases that add the pass of that name), checked (full check
    with shape inference), then compared with the Keras model in onnxruntime on synthesized
    inputs unless ``verify=False``. A model that is not equivalent is never written:
    NotEquivalentError (a GraphkitError whose ``report`` holds the comparison).
    """
    import onnx

    from graphkit.io import atomic_output, check_output_path, load_model
    from graphkit.onnx_passes import resolve_passes, run_passes

    pass_names = [passes] if isinstance(passes, str) else list(passes)
    for alias, wanted in (("fuse_onehot", fuse_onehot), ("lower_gather", lower_gather)):
        if wanted and alias not in pass_names:  # the flag may repeat a --pass
            pass_names.append(alias)
    resolve_passes(pass_names)  # unknown or conflicting names fail before the slow export
    if not 13 <= int(opset) <= 21:
        raise GraphkitError(f"--opset {opset}: graphkit exports opsets 13 to 21")
    source = None
    if isinstance(model, (str, os.PathLike)):
        source = str(model)
        if output is None:
            output = default_onnx_path(model)
        model = load_model(
            model, unsafe=unsafe, imports=imports, compile=False, onehot_lambdas=onehot_lambdas
        )
    if output is not None:
        output = Path(output)
        if output.suffix.lower() != ".onnx":
            raise GraphkitError(f"{output}: the output must end in .onnx")
        check_output_path(output, force=force)

    start = time.perf_counter()
    from graphkit.conversion import repair
    from graphkit.subclassed import functional_view

    model = functional_view(model, source)  # a subclassed model: on the shape it was built with

    # Export what the eager call computes: Keras' TimeDistributed is wrong when traced.
    exported, repairs = repair(model)
    proto = to_onnx_proto(exported, opset)
    pass_results = run_passes(proto, pass_names)
    check_proto(proto)
    seconds = time.perf_counter() - start

    counts = Counter(n.op_type for n in proto.graph.node)
    report = ExportReport(
        source or f"<keras model {model.name!r}>",
        None,
        opset,
        len(proto.graph.node),
        dict(sorted(counts.items())),
        seconds,
        passes=pass_results,
        inputs=[i.name for i in proto.graph.input],
        outputs=[o.name for o in proto.graph.output],
        repairs=repairs,
    )
    if output is None:
        return _verified(report, model, proto, None, verify, samples, seq_len)
    with atomic_output(output, force=force) as tmp:  # removed again if verification fails
        onnx.save_model(proto, str(tmp))
        if not verify:  # what is written must read back; the check reads it otherwise
            from graphkit.backends import check_onnx_file

            check_onnx_file(tmp)
        _verified(report, model, proto, tmp, verify, samples, seq_len)
        report.size_bytes = tmp.stat().st_size
    report.output = str(output)
    return report


def _verified(report, model, proto, path, verify, samples, seq_len):
    if not verify:
        return report
    from graphkit.backends import KerasBackend, OnnxBackend
    from graphkit.verification import verify as run_verify
    from graphkit.verification.inputs import batch_size_apart

    if path is None:  # in-memory export: check a temporary copy, removed afterwards
        import onnx

        from graphkit.interrupts import temporary_directory

        with temporary_directory(prefix="graphkit-export-") as folder:
            tmp = Path(folder) / "model.onnx"
            onnx.save_model(proto, str(tmp))
            return _verified(report, model, proto, tmp, verify, samples, seq_len)
    result = run_verify(
        KerasBackend(model, report.source),
        OnnxBackend(path),
        samples=samples,
        seq_len=seq_len,
        batch_size=batch_size_apart(16, seq_len),
    )
    report.verify = result
    if not result.equivalent:
        raise NotEquivalentError(
            "the exported ONNX model does not match the Keras model; nothing was written", result
        )
    return report
