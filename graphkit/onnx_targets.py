"""Export targets: the ONNX passes that fit an export to a mobile execution provider, and the
provider's own coverage check (onnxruntime's mobile usability checker).

A target is data: the provider's name as onnxruntime's checker reports it, the checker's list
of the ops that provider runs, and the deploy passes that make a graphkit export one
partition for it. ``plan_passes`` turns export options (passes, aliases, index type, fixed
shapes, target) into the pass names and parameters the runner takes; the CLI calls it before
TensorFlow is imported, so that a mistake answers at once. ``coverage`` runs the checker and
prices each table lookup of the file (``find_lookups``, ``lookup_cost``): a target's lookups
take the cheapest form its checker's list takes (``lookup_form``: Gather, then GatherND, then
one-hot x table), and ``PROVIDER_NOTES`` say where the provider's sources refuse what the list
takes.

Importing this module is cheap: onnx and onnxruntime load when the checker runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphkit.errors import GraphkitError


@dataclass(frozen=True)
class Target:
    name: str
    provider: str  # as onnxruntime's checker names it
    ops_list: str  # the checker's list of supported ops (onnxruntime/tools/mobile_helpers)
    passes: tuple[str, ...]  # deploy passes, in the order they run
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    summary: str = ""


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "nnapi",
            "NNAPI",
            "nnapi_supported_ops.md",
            ("drop_index_guards", "int32_indices", "onehot_arithmetic", "fix_shapes"),
            summary="Android NNAPI: Gather on int32 indices, OneHot as arithmetic, "
            "guards dropped, static shapes",
        ),
        Target(
            "coreml",
            "CoreML MLProgram",
            "coreml_supported_mlprogram_ops.md",
            (
                "drop_index_guards",
                "int32_indices",
                "gather_nd",
                "onehot_arithmetic",
                "fix_shapes",
            ),
            params={"onehot_arithmetic": {"tables": True}},
            summary="iOS CoreML MLProgram (no Gather in the checker's list): every lookup as "
            "GatherND (one-hot x table -> MatMul where the list lacks GatherND), OneHot as "
            "arithmetic, guards dropped, int32 inputs, static shapes",
        ),
    )
}

# What onnxruntime's provider sources say beyond the checker's list, per target and lookup form:
# the CoreML EP's GatherND builder (onnxruntime PR 28598) refuses indices that are not a constant
# initializer (CoreML's gather_nd miscomputes them), so a device runs such a lookup on the CPU.
PROVIDER_NOTES = {
    ("coreml", "GatherND"): "GatherND on runtime indices: onnxruntime's CoreML EP builder takes "
    "constant indices only (PR 28598), so a device runs this lookup on the CPU; the checker's "
    "list does not say so",
}

# The forms of a table lookup, cheapest first (see ``lookup_cost``): the first one the provider's
# list takes is the one a target's passes make.
LOOKUP_FORMS = ("Gather", "GatherND", "one-hot x table")
_LOOKUP_PASS = {"GatherND": "gather_nd"}  # a form -> the pass that makes it from a Gather


def listed_ops(target: Target) -> set[str] | None:
    """The op types (``ai.onnx`` domain) in the checker's list for ``target``, read from the
    list bundled with the installed onnxruntime without importing it; None if not found."""
    import importlib.util
    import pathlib
    import re

    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = pathlib.Path(root) / "tools" / "mobile_helpers" / target.ops_list
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            return set(re.findall(r"^\|ai\.onnx:(\w+)\|", text, re.MULTILINE))
    return None


def lookup_form(target: Target, listed: set[str] | None = None) -> str:
    """The form a table lookup takes for ``target``: the cheapest of ``LOOKUP_FORMS`` that
    the checker's list takes (``listed``, read from onnxruntime when not given)."""
    if listed is None:
        listed = listed_ops(target)
    if listed is None:  # no list to read: the target as declared
        return "GatherND" if "gather_nd" in target.passes else "Gather"
    for form in LOOKUP_FORMS[:-1]:
        if form in listed:
            return form
    return LOOKUP_FORMS[-1]


def lookup_cost(vocab: int, dim: int, itemsize: int = 4) -> dict[str, dict[str, int]]:
    """What one looked-up index (a token) costs in each form, and the table's bytes.

    Gather and GatherND copy one row: 0 multiply-adds, ``dim`` numbers read. One-hot x table
    builds a ``vocab``-wide one-hot row and multiplies it by the whole table: ``vocab x dim``
    multiply-adds, every table number read. The table's bytes are the same in every form.
    """
    table_bytes = vocab * dim * itemsize
    row = {"macs_per_token": 0, "reads_per_token": dim, "table_bytes": table_bytes}
    return {
        "Gather": dict(row),
        "GatherND": dict(row),
        "one-hot x table": {
            "macs_per_token": vocab * dim,
            "reads_per_token": vocab * dim,
            "table_bytes": table_bytes,
        },
    }


def check_target(name: str | None) -> Target | None:
    """The target called ``name`` (None for none); GraphkitError naming the known ones."""
    if name is None:
        return None
    if name not in TARGETS:
        known = ", ".join(TARGETS)
        if name == "gpu-delegate":  # LiteRT's (graphkit.export.litert.TARGETS)
            raise GraphkitError(
                f"target={name!r} is a LiteRT target (export_litert); an ONNX export takes "
                f"one of: {known}",
                cli=f"--target {name} is a LiteRT target (--litert); with --onnx the target "
                f"is one of: {known}",
            )
        raise GraphkitError(
            f"target={name!r}: expected one of: {known}",
            cli=f"--target {name}: expected one of: {known}",
        )
    return TARGETS[name]


def plan_passes(
    passes: Sequence[str] | str = (),
    *,
    fuse_onehot: bool = False,
    lower_gather: bool = False,
    index_dtype: str | None = None,
    fixed_shapes: Mapping[str, Any] | None = None,
    target: str | None = None,
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The ONNX pass names (in order) and parameters that export options ask for, checked
    (unknown or conflicting passes, bad parameters): cheap, before any slow work.

    ``fuse_onehot``/``lower_gather`` add the pass of that name; ``index_dtype="int32"`` adds
    ``int32_indices``; ``fixed_shapes`` adds ``fix_shapes`` with them; ``target`` adds the
    target's passes after the others, in the target's order, and needs ``fixed_shapes``.
    """
    from graphkit.onnx_passes import fix_shapes, int32_indices, resolve_passes

    names = [passes] if isinstance(passes, str) else list(passes)
    for alias, wanted in (("fuse_onehot", fuse_onehot), ("lower_gather", lower_gather)):
        if wanted:
            names.append(alias)
    int32_indices.check_index_dtype(index_dtype)
    if index_dtype == "int32":
        names.append(int32_indices.NAME)
    params: dict[str, dict[str, Any]] = {}
    if fixed_shapes:
        params[fix_shapes.NAME] = {"shapes": fix_shapes.normalise_shapes(fixed_shapes)}
        names.append(fix_shapes.NAME)
    chosen = check_target(target)
    if chosen is not None:
        if not fixed_shapes:
            why = f"{chosen.provider} runs static shapes only"
            raise GraphkitError(
                f"target={chosen.name!r} needs fixed_shapes={{NAME: DIMS}} for every input "
                f"(e.g. fixed_shapes={{'tokens': (1, 64)}}): {why}",
                cli=f"--target {chosen.name} needs --fixed-shape NAME=DIMS for every input "
                f"(e.g. --fixed-shape tokens=1x64): {why}",
            )
        form = lookup_form(chosen)
        own = _target_passes(chosen, form)
        names = [n for n in names if n not in own] + own
        for name, given in chosen.params.items():
            if form == "Gather" and name == "onehot_arithmetic":  # the list takes Gather
                given = {k: v for k, v in given.items() if k != "tables"}
            if given:
                params.setdefault(name, {}).update(given)
    names = list(dict.fromkeys(names))  # a pass named twice runs once
    resolve_passes(names, params=params)
    return names, params


def _target_passes(target: Target, form: str) -> list[str]:
    """The target's passes, with its lookup pass only where the checker's list takes that form:
    a list that lacks GatherND leaves the lookups to one-hot x table (``onehot_arithmetic``
    with ``tables=True``), one that takes Gather leaves them as they are."""
    lookup_passes = set(_LOOKUP_PASS.values())
    return [n for n in target.passes if n not in lookup_passes or n == _LOOKUP_PASS.get(form)]


def check_inputs_fixed(
    target: str | None, declared: Mapping[str, Sequence[int | None]], fixed: Mapping[str, Any]
) -> None:
    """Every model input (``declared``: name -> dims, None where dynamic) has a static shape
    once ``fixed`` applies: what the target's provider needs."""
    chosen = check_target(target)
    if chosen is not None:
        require_static_inputs(
            chosen.name, f"({chosen.provider} runs static shapes only)", declared, fixed
        )


def require_static_inputs(
    target: str, why: str, declared: Mapping[str, Sequence[int | None]], fixed: Mapping[str, Any]
) -> None:
    """Every input of ``declared`` static once ``fixed`` applies, else GraphkitError naming
    the first dynamic one, ``target`` (an ONNX or LiteRT target) and ``why`` it needs that."""
    for name, dims in declared.items():
        if name not in fixed and any(d is None for d in dims):
            shape = "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"
            raise GraphkitError(
                f"target={target!r}: input {name!r} has the dynamic shape {shape}: fix it "
                f"with fixed_shapes={{{name!r}: DIMS}} {why}",
                cli=f"--target {target}: input {name!r} has the dynamic shape {shape}: fix "
                f"it with --fixed-shape {name}=DIMS {why}",
            )


@dataclass
class Lookup:
    """One table lookup of an exported graph, in the form it has there, and what it costs."""

    node: str
    form: str  # one of LOOKUP_FORMS
    vocab: int
    dim: int  # numbers per row (the product of the table's other dims)
    table_bytes: int
    macs_per_token: int  # multiply-adds per looked-up index, in this form
    onehot_macs_per_token: int  # the same lookup as one-hot x table

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "form": self.form,
            "vocab": self.vocab,
            "dim": self.dim,
            "table_bytes": self.table_bytes,
            "macs_per_token": self.macs_per_token,
            "onehot_macs_per_token": self.onehot_macs_per_token,
        }

    def format(self) -> str:
        text = (
            f"{self.node} {self.form} on {self.vocab}x{self.dim} ({_size(self.table_bytes)}), "
            f"{self.macs_per_token:,} MACs/token"
        )
        if self.form != LOOKUP_FORMS[-1]:
            text += f" (one-hot x table: {self.onehot_macs_per_token:,})"
        return text


def _size(nbytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"


_PASS_THROUGH = {"Cast", "Reshape", "Identity", "Flatten", "Squeeze", "Unsqueeze"}


def _is_onehot(index, name: str) -> bool:
    """``name`` is a one-hot: a OneHot, or onehot_arithmetic's Relu(1 - d*d), maybe reshaped
    or cast on the way."""
    for _ in range(8):
        node = index.producer.get(name)
        if node is None:
            return False
        if node.op_type == "OneHot":
            return True
        if node.op_type == "Relu":
            sub = index.producer.get(node.input[0])
            mul = (
                index.producer.get(sub.input[1])
                if sub is not None and sub.op_type == "Sub"
                else None
            )
            return mul is not None and mul.op_type == "Mul" and mul.input[0] == mul.input[1]
        if node.op_type not in _PASS_THROUGH:
            return False
        name = node.input[0]
    return False


def find_lookups(model) -> list[Lookup]:
    """Every table lookup of ``model``'s main graph (an ``onnx.ModelProto``; table data need
    not be loaded): a Gather (axis 0) or GatherND on a constant table, and a MatMul/Gemm of a
    one-hot by a constant 2-D table."""
    from graphkit.onnx_passes.graph import GraphIndex, attribute
    from graphkit.onnx_weights import tensor_nbytes

    index = GraphIndex(model.graph)
    found = []
    for node in model.graph.node:
        op, label = node.op_type, node.name or node.output[0]
        table = node.input[1] if op in ("MatMul", "Gemm") else node.input[0] if node.input else ""
        dims = index.constant_shape(table) if table else None
        if not dims:
            continue
        if op == "Gather" and attribute(node, "axis", 0) in (0, -len(dims)):
            form = "Gather"
        elif op == "GatherND" and attribute(node, "batch_dims", 0) == 0:
            form = "GatherND"
        elif (
            op in ("MatMul", "Gemm")
            and len(dims) == 2
            and not attribute(node, "transA", 0)
            and not attribute(node, "transB", 0)
            and _is_onehot(index, node.input[0])
        ):
            form = "one-hot x table"
        else:
            continue
        if form != "one-hot x table" and index.constant_shape(node.input[1]) is not None:
            continue  # a constant index: shape arithmetic, not a lookup (GatherND: its
            # Unsqueeze of an input is not a constant, so a token lookup stays)
        vocab, dim = dims[0], 1
        for d in dims[1:]:
            dim *= d
        tensor = index.initializers.get(table)
        nbytes = tensor_nbytes(tensor) if tensor is not None else vocab * dim * 4
        cost = lookup_cost(vocab, dim)
        found.append(
            Lookup(
                label,
                form,
                vocab,
                dim,
                nbytes,
                cost[form]["macs_per_token"],
                cost["one-hot x table"]["macs_per_token"],
            )
        )
    return found


@dataclass
class Coverage:
    """What onnxruntime's mobile usability checker says of a model for one provider, and the
    form and cost of each table lookup in it."""

    target: str
    provider: str
    nodes: int  # after onnxruntime's basic optimizations, as the checker counts them
    handled: int
    partitions: int
    unsupported_ops: list[str] = field(default_factory=list)  # op types the provider lacks
    dynamic_nodes: int = 0  # nodes refused for an input of unknown shape
    rank_nodes: int = 0  # nodes refused for an input of too high a rank
    caveats: list[str] = field(default_factory=list)  # the checker's unchecked conditions
    lookups: list[Lookup] = field(default_factory=list)  # in the model as written
    provider_notes: list[str] = field(default_factory=list)  # from the provider's sources

    @property
    def whole(self) -> bool:
        """One partition holding every node: the provider runs the whole model."""
        return self.partitions == 1 and self.handled == self.nodes

    @property
    def macs_per_token(self) -> int:
        """Multiply-adds of every lookup for one index each, in their forms here."""
        return sum(lk.macs_per_token for lk in self.lookups)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "provider": self.provider,
            "nodes": self.nodes,
            "handled": self.handled,
            "partitions": self.partitions,
            "whole": self.whole,
            "unsupported_ops": self.unsupported_ops,
            "dynamic_nodes": self.dynamic_nodes,
            "rank_nodes": self.rank_nodes,
            "caveats": self.caveats,
            "lookups": [lk.to_dict() for lk in self.lookups],
            "provider_notes": self.provider_notes,
        }

    def format(self) -> str:
        """One line: provider, nodes handled / total, partitions; each lookup's form, MACs per
        token and table bytes; then what the provider lacks, if any."""
        text = (
            f"{self.provider} {self.handled}/{self.nodes} nodes, {self.partitions} "
            f"partition{'s' if self.partitions != 1 else ''} (onnxruntime's mobile usability "
            "checker)"
        )
        if self.lookups:
            text += "; lookups: " + ", ".join(lk.format() for lk in self.lookups)
        missing = []
        if self.unsupported_ops:
            missing.append(f"ops {self.provider} lacks: {', '.join(self.unsupported_ops)}")
        if self.dynamic_nodes:
            missing.append(f"{self.dynamic_nodes} node(s) on dynamic shapes")
        if self.rank_nodes:
            missing.append(f"{self.rank_nodes} node(s) on tensors of too high a rank")
        text += f"; not handled: {'; '.join(missing)}" if missing else ""
        return text + "".join(f"; note: {note}" for note in self.provider_notes)


def coverage(path, target: str, optimize: bool = True) -> Coverage:
    """Run onnxruntime's mobile usability checker on the ONNX file ``path`` for ``target``,
    quietly, the way ``python -m onnxruntime.tools.check_onnx_model_mobile_usability`` does:
    onnxruntime's basic optimizations first (unless ``optimize=False``), then onnx's shape
    inference, then the provider's partitioning with fixed input sizes required."""
    import pathlib
    import tempfile

    import onnx
    from onnxruntime.tools.mobile_helpers import usability_checker
    from onnxruntime.tools.onnx_model_utils import optimize_model

    chosen = check_target(target)
    path = path_written = pathlib.Path(path)
    with tempfile.TemporaryDirectory(prefix="graphkit-coverage-") as tmp:
        if optimize:
            optimized = pathlib.Path(tmp) / path.name
            optimize_model(path, optimized, use_external_initializers=True)
            path = optimized
        # the table's bytes are not needed: shape inference reads the dims
        model = onnx.load(str(path), load_external_data=False)
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    # the lookups as written (the optimizer may fold a one-hot's arithmetic out of sight)
    lookups = find_lookups(onnx.load(str(path_written), load_external_data=False))
    notes = {
        PROVIDER_NOTES[chosen.name, lk.form]
        for lk in lookups
        if (chosen.name, lk.form) in PROVIDER_NOTES  # a lookup's indices are never constant
    }
    if chosen.ops_list == "nnapi_supported_ops.md":
        info = usability_checker.check_nnapi_partitions(model, require_fixed_input_sizes=True)
    else:
        info = usability_checker.check_coreml_partitions(
            model, require_fixed_input_sizes=True, config_filename=chosen.ops_list
        )
    return Coverage(
        chosen.name,
        chosen.provider,
        info.num_nodes,
        info.num_supported_nodes,
        info.num_partitions,
        sorted(op.split(":", 1)[-1] for op in info.unsupported_ops),
        info.nodes_unsupported_due_to_dynamic_input,
        info.num_unsupported_nodes_due_to_rank,
        info.supported_ops_checker.get_caveats(),
        lookups,
        sorted(notes),
    )


def describe_targets() -> list[dict[str, Any]]:
    """Every target as ``{"name", "provider", "passes", "summary"}``, for ``graphkit rules``."""
    return [
        {
            "name": t.name,
            "provider": t.provider,
            "passes": [
                name + "".join(f"({k}={v!r})" for k, v in sorted(t.params.get(name, {}).items()))
                for name in t.passes
            ],
            "summary": t.summary,
        }
        for t in TARGETS.values()
    ]
