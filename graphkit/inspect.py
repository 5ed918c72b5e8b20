"""``graphkit inspect``: the layers of a model, with every Embedding and OneHot group marked."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from graphkit.engine import Plan, all_layer_names, is_graph_model


@dataclass
class LayerRow:
    path: str
    layer_class: str
    output_shape: str
    params: int
    # "embedding" | "onehot" | "onehot-dense" (the Dense of a OneHot group) | "repair"
    role: str = ""
    convertible: bool | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "class": self.layer_class,
            "output_shape": self.output_shape,
            "params": self.params,
            "role": self.role or None,
            "convertible": self.convertible,
            "detail": self.detail or None,
        }


@dataclass
class InspectReport:
    model_name: str
    inputs: list[dict]
    outputs: list[dict]
    rows: list[LayerRow] = field(default_factory=list)
    total_params: int = 0
    source: str | None = None

    @property
    def embeddings(self) -> list[LayerRow]:
        return [r for r in self.rows if r.role == "embedding"]

    @property
    def onehots(self) -> list[LayerRow]:
        return [r for r in self.rows if r.role == "onehot"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "model": self.model_name,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "total_params": self.total_params,
            "embeddings": len(self.embeddings),
            "onehot_groups": len(self.onehots),
            "layers": [r.to_dict() for r in self.rows],
        }

    def format(self) -> str:
        """The table ``graphkit inspect`` prints."""
        report = self

        def fmt_io(items):
            return ", ".join(f"{i['name']} {tuple(i['shape'])} {i['dtype']}" for i in items)

        head = ["path", "class", "output shape", "params", "graphkit"]
        body = []
        for r in report.rows:
            if r.role:
                mark = {
                    "embedding": "Embedding",
                    "onehot": "OneHot",
                    "onehot-dense": "OneHot group",
                    "repair": "Keras TimeDistributed",
                }[r.role]
                if r.role == "repair":
                    state = (
                        "repaired on convert and export (wrong when traced with an unknown time axis)"
                        if r.convertible
                        else "kept"
                    )
                elif r.role == "onehot":
                    state = "foldable" if r.convertible else "not foldable"
                else:
                    state = "convertible" if r.convertible else "not convertible"
                if r.role == "onehot-dense":
                    state = r.detail
                elif r.detail:
                    state = f"{state}: {r.detail}" if not r.convertible else f"{state} {r.detail}"
                mark = f"{mark}, {state}"
            else:
                mark = ""
            body.append([r.path, r.layer_class, r.output_shape, f"{r.params:,}", mark])
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
        lines = [
            f"model {report.model_name!r}: {report.total_params:,} parameters",
            f"inputs:  {fmt_io(report.inputs)}",
            f"outputs: {fmt_io(report.outputs)}",
            "",
        ]
        for row in [head] + body:
            cells = [
                str(c).ljust(w) if i != 3 else str(c).rjust(w)
                for i, (c, w) in enumerate(zip(row, widths))
            ]
            lines.append("  ".join(cells).rstrip())
        lines.append("")
        lines.append(
            f"{len(report.embeddings)} Embedding(s) "
            f"({sum(1 for r in report.embeddings if r.convertible)} convertible), "
            f"{len(report.onehots)} OneHot group(s) "
            f"({sum(1 for r in report.onehots if r.convertible)} foldable)"
        )
        return "\n".join(lines)


def _shape(layer) -> str:
    try:
        return str(tuple(layer.output.shape))
    except Exception:
        pass
    try:
        nodes = layer._inbound_nodes
        shapes = {str(tuple(t.shape)) for n in nodes for t in n.outputs}
        if len(shapes) == 1:
            return shapes.pop()
        if shapes:
            return "multiple"
    except Exception:
        pass
    return "?"


def _params(layer) -> int:
    try:
        return int(layer.count_params()) if layer.built else 0
    except Exception:
        return 0


def _walk(model, path: str, rows: list[LayerRow], seen: set[int]) -> None:
    children = (
        model.layers
        if is_graph_model(model)
        else model._flatten_layers(include_self=False, recursive=False)
    )
    for layer in children:
        layer_path = f"{path}/{layer.name}" if path else layer.name
        rows.append(LayerRow(layer_path, type(layer).__name__, _shape(layer), _params(layer)))
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if is_graph_model(layer) or _holds_anchor(layer):
            _walk(layer, layer_path, rows, seen)


def _holds_anchor(layer) -> bool:
    """Does a custom layer hide an Embedding or OneHot? (Only then is it worth expanding.)"""
    import keras

    from graphkit.layers import OneHot

    return any(
        isinstance(inner, (keras.layers.Embedding, OneHot))
        for inner in layer._flatten_layers(include_self=False, recursive=True)
    )


def output_names(model) -> list[str]:
    """Names of a model's outputs, in ``model.outputs`` order.

    The keys for a model that returns a flat dict (what callers index by); otherwise the
    producing layers' names, as Keras reports them.
    """
    outputs = getattr(model, "outputs", None) or []
    struct = getattr(model, "_outputs_struct", None)
    if isinstance(struct, dict) and len(struct) == len(outputs):
        if all(
            isinstance(k, str) and not isinstance(v, (dict, list, tuple)) for k, v in struct.items()
        ):
            return sorted(struct)  # keras.tree.flatten's order
    try:
        names = list(model.output_names)
        if len(names) == len(outputs):
            return names
    except Exception:
        pass
    try:
        if len(outputs) == 1 and model.layers:  # Sequential: the last layer names the output
            return [model.layers[-1].name]
    except Exception:
        pass
    return [f"output_{i}" for i in range(len(outputs))]


def inspect_model(model, *, unsafe: bool = False, imports=()) -> InspectReport:
    """Describe ``model`` (a Keras model or a path) and mark what graphkit can convert."""
    from graphkit.rules import EmbeddingToOneHot, OneHotToEmbedding, RepairTimeDistributed

    source = None
    if isinstance(model, (str, os.PathLike)):
        from graphkit.io import load_model

        source = str(model)
        model = load_model(model, unsafe=unsafe, imports=imports, compile=False)

    rows: list[LayerRow] = []
    _walk(model, "", rows, set())
    by_path = {r.path: r for r in rows}

    def findings(rule_cls, role):
        """Mark the rows of one rule's findings (added if hidden); return (finding, row) pairs."""
        plan = Plan([rule_cls(all_layer_names(model))])
        plan.analyze(model)
        marked = []
        for f in plan.findings:
            row = by_path.get(f.path)
            if row is None:
                row = by_path[f.path] = LayerRow(f.path, f.layer_class, "?", 0)
                rows.append(row)
            row.role = role
            row.convertible = f.status in ("converted", "repaired")
            row.detail = f.reason or ""
            marked.append((f, row))
        return marked

    findings(RepairTimeDistributed, "repair")
    for _, row in findings(EmbeddingToOneHot, "embedding"):
        if row.convertible:
            row.detail = "-> OneHot + Dense"
    for f, row in findings(OneHotToEmbedding, "onehot"):
        if row.convertible:
            row.detail = "-> Embedding"
            prefix = f.path.rsplit("/", 1)[0] + "/" if "/" in f.path else ""
            for name in f.replaced[1:]:
                member = by_path.get(prefix + name)
                if member is not None:
                    member.role = "onehot-dense"
                    member.convertible = True
                    member.detail = f"folds with {f.path}"

    inputs = [
        {"name": t.name, "shape": list(t.shape), "dtype": str(t.dtype)}
        for t in getattr(model, "inputs", None) or []
    ]
    outputs = [
        {"name": name, "shape": list(t.shape), "dtype": str(t.dtype)}
        for name, t in zip(output_names(model), getattr(model, "outputs", None) or [])
    ]
    return InspectReport(
        model.name, inputs, outputs, rows, _params(model) if model.built else 0, source
    )
