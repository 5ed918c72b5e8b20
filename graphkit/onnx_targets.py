"""Export targets: the ONNX passes that fit an export to a mobile execution provider, and the
provider's own coverage check (onnxruntime's mobile usability checker).

A target is data: the provider's name as onnxruntime's checker reports it, the checker's list
of the ops that provider runs, and the deploy passes that make a graphkit export one
partition for it. ``plan_passes`` turns export options (passes, aliases, index type, fixed
shapes, target) into the pass names and parameters the runner takes; the CLI calls it before
TensorFlow is imported, so that a mistake answers at once. ``coverage`` runs the checker.

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
            ("drop_index_guards", "int32_indices", "onehot_arithmetic", "fix_shapes"),
            params={"onehot_arithmetic": {"tables": True}},
            summary="iOS CoreML MLProgram (no Gather): every lookup as arithmetic one-hot -> "
            "MatMul, guards dropped, int32 inputs, static shapes",
        ),
    )
}


def check_target(name: str | None) -> Target | None:
    """The target called ``name`` (None for none); GraphkitError naming the known ones."""
    if name is None:
        return None
    if name not in TARGETS:
        known = ", ".join(TARGETS)
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
        names = [n for n in names if n not in chosen.passes] + list(chosen.passes)
        for name, given in chosen.params.items():
            params.setdefault(name, {}).update(given)
    names = list(dict.fromkeys(names))  # a pass named twice runs once
    resolve_passes(names, params=params)
    return names, params


def check_inputs_fixed(
    target: str | None, declared: Mapping[str, Sequence[int | None]], fixed: Mapping[str, Any]
) -> None:
    """Every model input (``declared``: name -> dims, None where dynamic) has a static shape
    once ``fixed`` applies: what the target's provider needs."""
    chosen = check_target(target)
    if chosen is None:
        return
    for name, dims in declared.items():
        if name not in fixed and any(d is None for d in dims):
            shape = "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"
            why = f"({chosen.provider} runs static shapes only)"
            raise GraphkitError(
                f"target={chosen.name!r}: input {name!r} has the dynamic shape {shape}: fix it "
                f"with fixed_shapes={{{name!r}: DIMS}} {why}",
                cli=f"--target {chosen.name}: input {name!r} has the dynamic shape {shape}: fix "
                f"it with --fixed-shape {name}=DIMS {why}",
            )


@dataclass
class Coverage:
    """What onnxruntime's mobile usability checker says of a model for one provider."""

    target: str
    provider: str
    nodes: int  # after onnxruntime's basic optimizations, as the checker counts them
    handled: int
    partitions: int
    unsupported_ops: list[str] = field(default_factory=list)  # op types the provider lacks
    dynamic_nodes: int = 0  # nodes refused for an input of unknown shape
    rank_nodes: int = 0  # nodes refused for an input of too high a rank
    caveats: list[str] = field(default_factory=list)  # the checker's unchecked conditions

    @property
    def whole(self) -> bool:
        """One partition holding every node: the provider runs the whole model."""
        return self.partitions == 1 and self.handled == self.nodes

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
        }

    def format(self) -> str:
        """One line: provider, nodes handled / total, partitions; then what it lacks, if any."""
        text = (
            f"{self.provider} {self.handled}/{self.nodes} nodes, {self.partitions} "
            f"partition{'s' if self.partitions != 1 else ''} (onnxruntime's mobile usability "
            "checker)"
        )
        missing = []
        if self.unsupported_ops:
            missing.append(f"ops {self.provider} lacks: {', '.join(self.unsupported_ops)}")
        if self.dynamic_nodes:
            missing.append(f"{self.dynamic_nodes} node(s) on dynamic shapes")
        if self.rank_nodes:
            missing.append(f"{self.rank_nodes} node(s) on tensors of too high a rank")
        return text + (f"; not handled: {'; '.join(missing)}" if missing else "")


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
    path = pathlib.Path(path)
    with tempfile.TemporaryDirectory(prefix="graphkit-coverage-") as tmp:
        if optimize:
            optimized = pathlib.Path(tmp) / path.name
            optimize_model(path, optimized, use_external_initializers=True)
            path = optimized
        # the table's bytes are not needed: shape inference reads the dims
        model = onnx.load(str(path), load_external_data=False)
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
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
