"""What an export did (any format): the file, its ops, the repairs and passes, the check, each
stage's time. ``graphkit export`` prints ``format()`` or ``to_dict()`` as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphkit.errors import GraphkitError

# the formats graphkit writes: the runtime that verifies each, for the report's lines
RUNTIMES = {"onnx": "onnxruntime", "litert": "LiteRT"}
# to_dict's keys that only an ONNX export has
ONNX_ONLY = ("opset", "external_data", "external_bytes", "removed", "passes", "left_out")


class NotEquivalentError(GraphkitError):
    """The exported model does not compute what the Keras model computes (exit 1)."""

    def __init__(self, message: str, report):
        super().__init__(message)
        self.report = report


@dataclass
class ExportReport:
    source: str
    output: str | None
    opset: int | None  # ONNX's; None for LiteRT
    nodes: int  # ONNX nodes, or LiteRT operators (main subgraph)
    op_counts: dict[str, int]
    export_seconds: float
    size_bytes: int = 0
    passes: list[Any] = field(default_factory=list)  # onnx_passes.PassResult, in the order run
    verify: Any = None
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    repairs: list[Any] = field(default_factory=list)  # engine Findings of the repair rules
    external_data: str | None = None  # the .onnx.data file beside the model, if any
    external_bytes: int = 0
    removed: str | None = None  # the data file of an earlier export, removed with --force
    # --index-dtype/--fixed-shape: what was asked, and the inputs' types and shapes after
    deploy: dict[str, Any] = field(default_factory=dict)
    target: str | None = None  # --target: the runtime or delegate the export is fitted to
    coverage: Any = None  # what the target's own checker says of it (format(), to_dict())
    index_ranges: dict[str, int] = field(default_factory=dict)  # input -> vocab (the contract)
    # weights no node reads (seed states, untied tables the outputs skip): never written
    left_out_initializers: int = 0
    left_out_bytes: int = 0
    format_name: str = "onnx"  # "onnx" or "litert"
    stages: dict[str, float] = field(default_factory=dict)  # stage -> seconds, in order
    notes: list[str] = field(default_factory=list)  # what the writer did not do, and why

    def to_dict(self) -> dict[str, Any]:
        out = {
            "format": self.format_name,
            "source": self.source,
            "output": self.output,
            "opset": self.opset,
            "nodes": self.nodes,
            "op_counts": self.op_counts,
            "export_seconds": round(self.export_seconds, 3),
            "size_bytes": self.size_bytes,
            "external_data": self.external_data,
            "external_bytes": self.external_bytes,
            "removed": self.removed,
            "inputs": self.inputs,
            "deploy": self.deploy or None,
            "outputs": self.outputs,
            "passes": [
                {"name": p.name, "applied": p.applied, "skipped": p.skipped, "notes": p.notes}
                for p in self.passes
            ],
            "repairs": [f.to_dict() for f in self.repairs],
            "verify": self.verify.to_dict() if self.verify is not None else None,
            "target": self.target,
            "coverage": self.coverage.to_dict() if self.coverage is not None else None,
            "index_ranges": self.index_ranges or None,
            "left_out": {
                "initializers": self.left_out_initializers,
                "bytes": self.left_out_bytes,
            },
            "notes": self.notes,
            "stages": {name: round(s, 3) for name, s in self.stages.items()},
        }
        if self.format_name != "onnx":  # ONNX's own facts: not there to mislead
            for key in ONNX_ONLY:
                out.pop(key)
        return out

    def format_stages(self) -> str:
        """``stages: load 0.11 s, repair 0.00 s, ...`` (``--debug``)."""
        total = sum(self.stages.values())
        parts = ", ".join(f"{name} {s:.2f} s" for name, s in self.stages.items())
        return f"stages: {parts} (total {total:.2f} s)"

    def format(self) -> str:
        """What ``graphkit export`` prints."""
        runtime = RUNTIMES.get(self.format_name, self.format_name)
        if self.format_name == "onnx":
            what = f"opset {self.opset}, {self.nodes} nodes"
        else:
            what = f"LiteRT flatbuffer, {self.nodes} operators"
        lines = [
            f"{self.source} -> {self.output}",
            f"  {what}, {self.size_bytes:,} bytes, exported in {self.export_seconds:.1f} s",
            "  ops: " + ", ".join(f"{op} {n}" for op, n in self.op_counts.items()),
        ]
        if self.deploy:  # --index-dtype/--fixed-shape: the signature a runtime will see
            lines.append(
                "  inputs: "
                + ", ".join(
                    f"{name} {i['dtype']} {dims_text(i['shape'])}"
                    for name, i in self.deploy["inputs"].items()
                )
            )
        if self.left_out_initializers:
            lines.append(
                f"  left out {self.left_out_initializers} initializer(s) that no node reads "
                f"({self.left_out_bytes:,} bytes)"
            )
        if self.removed:
            lines.append(f"  removed {self.removed} (external data beside the model it replaced)")
        if self.external_bytes:
            where = self.external_data or "<model>.onnx.data"
            lines.append(f"  weights: {self.external_bytes:,} bytes in external data, {where}")
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
        lines += [f"  note: {note}" for note in self.notes]
        if self.verify is None:
            lines.append("  not verified (--no-verify)")
        else:
            worst = max((o.max_abs for o in self.verify.outputs), default=0.0)
            fed = self.verify.describe_inputs()
            lines.append(
                f"  verified in {runtime} on {self.verify.samples} samples ({fed}): "
                f"equivalent, max abs error {worst:.3g}"
            )
            from graphkit.verification.coverage import describe_coverage

            rows = describe_coverage(self.verify.coverage)
            if rows or self.verify.weights is not None:
                weights = self.verify.weights.summary() if self.verify.weights else ""
                lines.append(f"  {'; '.join(x for x in (rows, weights) if x)}")
            lines += [f"  note: {note}" for note in self.verify.notes]
        if self.coverage is not None:  # --target: the target's own checker, one line
            lines.append(f"  coverage: {self.coverage.format()}")
        return "\n".join(lines)


def dims_text(dims) -> str:
    return "x".join("?" if d is None else str(d) for d in dims) or "scalar"
