"""``graphkit inspect``: the layers of a model, with every Embedding and OneHot group marked."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from graphkit import _keras_api
from graphkit.engine import REWRITTEN, Plan, all_layer_names, is_graph_model
from graphkit.errors import GraphkitError

# output_names is also read from here by graphkit.onnx_export
from graphkit.model_facts import named_children, output_names


@dataclass
class LayerRow:
    path: str
    layer_class: str
    output_shape: str
    params: int
    # the anchor's kind, as its rule declares it ("embedding", "onehot", "repair"...), or the
    # role of a layer replaced together with an anchor ("onehot-dense"); "" for other layers
    role: str = ""
    rule: str = ""  # the rule that marked the row
    convertible: bool | None = None
    detail: str = ""
    mark: str = ""  # what the graphkit column says
    # a layer met again (a tied projection calling a backbone's table): the path where it was
    # first listed, with its weights; its params are not counted again
    shared_with: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "class": self.layer_class,
            "output_shape": self.output_shape,
            "params": self.params,
            "role": self.role or None,
            "rule": self.rule or None,
            "convertible": self.convertible,
            "detail": self.detail or None,
            "shared_with": self.shared_with or None,
        }


@dataclass
class InspectReport:
    model_name: str
    inputs: list[dict]
    outputs: list[dict]
    rows: list[LayerRow] = field(default_factory=list)
    total_params: int = 0
    source: str | None = None
    notes: list[str] = field(default_factory=list)

    # per rule with anchors in the model: (rule name, label, yes-word, found, rewritable)
    counts: list[tuple[str, str, str, int, int]] = field(default_factory=list)

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
            "anchors": {
                name: {"label": label, "found": found, "rewritable": ok}
                for name, label, _, found, ok in self.counts
            },
            "layers": [r.to_dict() for r in self.rows],
            "notes": self.notes,
        }

    def format(self) -> str:
        """The table ``graphkit inspect`` prints."""
        report = self

        def fmt_io(items):
            return ", ".join(f"{i['name']} {tuple(i['shape'])} {i['dtype']}" for i in items)

        head = ["path", "class", "output shape", "params", "graphkit"]
        body = []
        for r in report.rows:
            mark = r.mark or (f"the same layer as {r.shared_with}" if r.shared_with else "")
            params = "shared" if r.shared_with else f"{r.params:,}"
            body.append([r.path, r.layer_class, r.output_shape, params, mark])
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
            ", ".join(
                f"{found} {label}(s) ({ok} {yes.split()[0]})"
                for _, label, yes, found, ok in report.counts
            )
            or "nothing for graphkit's rules to rewrite"
        )
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def _shape(layer, model=None) -> str:
    """The output shape of ``layer`` where ``model`` (a Functional model, a KerasHub task
    too) calls it; a layer called in two models (a table in a backbone, called again reversed
    by a task) has one in each."""
    try:
        shown = _nodes_shape(_keras_api.nodes_in(model, layer)) if model is not None else None
        if shown:
            return shown
    except Exception:
        pass
    try:
        return str(tuple(layer.output.shape))
    except Exception:
        pass
    try:
        return _nodes_shape(_keras_api.inbound_nodes(layer)) or "?"
    except Exception:
        return "?"


def _nodes_shape(nodes) -> str | None:
    """The one output shape of ``nodes``, ``multiple``, or None where there is none."""
    shapes = {str(tuple(t.shape)) for n in nodes for t in n.outputs}
    if len(shapes) == 1:
        return shapes.pop()
    return "multiple" if shapes else None


def _params(layer) -> int:
    try:
        return int(layer.count_params()) if layer.built else 0
    except Exception:
        return 0


def _walk(model, path: str, rows: list[LayerRow], seen: dict[int, str]) -> None:
    import keras

    for name, layer in named_children(model):
        layer_path = f"{path}/{name}" if path else name
        row = LayerRow(layer_path, type(layer).__name__, _shape(layer, model), _params(layer))
        rows.append(row)
        if id(layer) in seen:
            if not isinstance(layer, keras.layers.InputLayer):
                row.shared_with = seen[id(layer)]
            continue
        seen[id(layer)] = layer_path
        if is_graph_model(layer) or _holds_anchor(layer):
            _walk(layer, layer_path, rows, seen)


def _holds_anchor(layer) -> bool:
    """Does a custom layer hide a rule's anchor? (Only then is it worth expanding.)"""
    from graphkit.rules import anchored_by_any

    return any(anchored_by_any(inner) for inner in _keras_api.flatten_layers(layer))


def _unwrapped_rows(rows: list[LayerRow], unwrapped: list[str]) -> dict[str, int]:
    """A layer inside a wrapper that a normalising rule removes is converted afterwards:
    say so instead of the "inside wrapper" refusal of the dry run on the original model."""
    flipped: dict[str, int] = {}
    for row in rows:
        outer = next((p for p in unwrapped if row.path.startswith(p + "/")), None)
        if outer is not None and "inside wrapper" in row.mark:
            label = row.mark.split(",", 1)[0]
            flipped[row.rule] = flipped.get(row.rule, 0) + 1
            row.convertible = True
            row.detail = f"converted once {outer} is unwrapped"
            row.mark = f"{label}, {row.detail}"
    return flipped


def _confirm_swaps(model, rows: list[LayerRow], notes: list[str]) -> None:
    """ "convertible" means what ``convert`` will do. A swap's checks alone cannot tell
    whether the model's graph calls the twin, or whether the saved record resolves, so
    where inspect would promise one, ``convert`` runs on a copy (``partial``): a swap it
    refuses, or whose record does not resolve, is marked as it refused."""
    from graphkit import swaps
    from graphkit.conversion import convert
    from graphkit.rules import RULES

    marked = [r for r in rows if r.convertible and "swapped in place" in r.mark]
    if not marked:
        return
    by_path = {r.path: r for r in marked}
    targets = dict.fromkeys(
        t for rule in RULES if rule.name in {r.rule for r in marked} for t in rule.targets[:1]
    )
    for target in targets:
        try:
            report = convert(model, target, partial=True, copy=True)
        except GraphkitError as exc:
            notes.append(f"convert --to {target} on a copy: {exc}")
            continue
        for f in report.refused:
            row = by_path.get(f.path)
            if row is not None:
                row.convertible, row.detail = False, f.reason or ""
                row.mark = f"{row.mark.split(',', 1)[0]}, not convertible: {f.reason}"
        for layer in _keras_api.flatten_layers(report.model, include_self=True):
            for path in swaps.swaps_of(layer):
                try:
                    swaps.resolve(layer, path)
                except ValueError as exc:
                    notes.append(f"{layer.name}: the saved record would not load back ({exc})")


def inspect_model(model, *, unsafe: bool = False, imports=(), onehot_lambdas=()) -> InspectReport:
    """Describe ``model`` (a Keras model or a path) and mark what graphkit can convert.

    One-hot Lambdas that graphkit recognises but would not adopt on its own are shown as
    they would be adopted, marked with the flag that adopts them (``--onehot-lambda``).
    """
    from graphkit.rules import RULES, RewriteContext

    source = None
    adopted: list = []
    provisional: dict = {}
    if isinstance(model, (str, os.PathLike)):
        from graphkit.io import load_model
        from graphkit.lambdas.adopt import file_lambdas, parse_requests

        source = str(model)
        requested = parse_requests(onehot_lambdas)
        if not unsafe:
            provisional = {
                info.name: info
                for info in file_lambdas(model)
                if info.one_hot
                and not info.certain
                and not info.does_more
                and info.name not in requested
                and info.depth is not None
            }
        model = load_model(
            model,
            unsafe=unsafe,
            imports=imports,
            compile=False,
            onehot_lambdas={**requested, **dict.fromkeys(provisional)},
            findings=adopted,
        )

    rows: list[LayerRow] = []
    notes: list[str] = []
    _walk(model, "", rows, {})
    by_path = {r.path: r for r in rows}
    for f in adopted:
        row = by_path.get(f.path)
        if row is None:
            continue
        row.role, row.rule, row.convertible = "lambda", f.rule, True
        if f.path in provisional:
            info = provisional[f.path]
            row.detail = f"not adopted: pass --onehot-lambda {f.path}"
            row.mark = f"{info.describe()}: shown adopted as OneHot; {row.detail}"
            row.convertible = False
        else:
            row.detail = "adopted as OneHot (from Lambda)"
            text = f.notes[0] if f.notes else ""
            how = text.split(": ", 1)[-1].split(";")[0] if text else ""
            row.mark = f"Lambda, adopted as OneHot ({how})" if how else "Lambda, adopted as OneHot"

    counts = []
    normalised: list[str] = []
    for rule in RULES:  # each rule's check only (dry run): nothing is built or copied
        plan = Plan([rule], RewriteContext(all_layer_names(model)), dry_run=True)
        plan.analyze(model)
        how = rule.inspect
        group = how.get("group", how["label"])
        for f in plan.findings:
            row = by_path.get(f.path)
            if row is None:  # hidden inside a custom layer
                row = by_path[f.path] = LayerRow(f.path, f.layer_class, "?", 0)
                rows.append(row)
            ok = f.status in REWRITTEN
            if ok and rule.phase == "normalise":
                normalised.append(f.path)
            becomes = how["becomes"]
            if ok and any("swapped in place" in note for note in f.notes):
                becomes = "-> its one-hot twin, swapped in place (a custom layer's attribute)"
            mark = (
                f"{how['label']}, {how['yes']} {becomes}"
                if ok
                else f"{how['label']}, {how['no']}: {f.reason}"
            )
            if not row.role:  # the first rule's mark leads; later rules add theirs
                row.role, row.rule, row.convertible = how["role"], rule.name, ok
                row.detail = how["becomes"] if ok else (f.reason or "")
            row.mark = f"{row.mark}; {mark}" if row.mark else mark
            if ok:
                prefix = f.path.rsplit("/", 1)[0] + "/" if "/" in f.path else ""
                for name in f.replaced[1:]:
                    member = by_path.get(prefix + name)
                    if member is None:
                        continue
                    mark = f"{group}, folds with {f.path}"
                    if not member.role:
                        member.role = how.get("member_role", how["role"])
                        member.rule, member.convertible = rule.name, True
                        member.detail = f"folds with {f.path}"
                        member.mark = mark
                    else:
                        member.mark = f"{mark}; {member.mark}"
        found = len(plan.findings)
        if found:
            ok_count = sum(1 for f in plan.findings if f.status in REWRITTEN)
            counts.append((rule.name, group, how["yes"], found, ok_count))

    _confirm_swaps(model, rows, notes)
    view = model
    from graphkit.subclassed import functional_view, needs_view

    if needs_view(model):
        try:
            view = functional_view(model, source)
        except GraphkitError as exc:
            notes.append(str(exc))
        from graphkit.subclassed import view_note

        if view_note(view):
            notes.append(view_note(view))
    flipped = _unwrapped_rows(rows, normalised)
    counts = [(n, lab, yes, found, ok + flipped.get(n, 0)) for n, lab, yes, found, ok in counts]
    inputs = [
        {"name": t.name, "shape": list(t.shape), "dtype": str(t.dtype)}
        for t in getattr(view, "inputs", None) or []
    ]
    outputs = [
        {"name": name, "shape": list(t.shape), "dtype": str(t.dtype)}
        for name, t in zip(output_names(view), getattr(view, "outputs", None) or [])
    ]
    return InspectReport(
        model.name,
        inputs,
        outputs,
        rows,
        _params(model) if model.built else 0,
        source,
        notes,
        counts,
    )
