"""The runner: resolve pass names (unknown, conflicting, bad parameters) and apply passes, then
clean up once. Above the pass modules and the registry; nothing below imports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from graphkit.errors import GraphkitError
from graphkit.onnx_passes.base import PHASES, OnnxPass, PassResult


def _conflicts(p: OnnxPass) -> dict[str, str]:
    declared = getattr(p, "CONFLICTS", ())
    if isinstance(declared, Mapping):
        return dict(declared)
    return {name: "declared as conflicting" for name in declared}


def _phase(p: OnnxPass) -> int:
    return PHASES.index(getattr(p, "PHASE", "rewrite"))


def resolve_passes(
    names: Sequence[str],
    registry: Mapping[str, OnnxPass] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[OnnxPass]:
    """The passes called ``names``, in that order (deploy passes last, see ``PHASES``);
    GraphkitError for an unknown or conflicting name, or parameters a pass refuses.

    Cheap (nothing is run, onnx is not imported): call it before any slow work.
    """
    if registry is None:
        from graphkit.onnx_passes.registry import PASSES as registry
    if isinstance(names, str):
        names = [names]
    known = ", ".join(registry)
    passes = []
    for name in dict.fromkeys(names):  # a pass named twice runs once
        if name not in registry:
            raise GraphkitError(f"unknown ONNX pass {name!r}: expected one of: {known}")
        passes.append(registry[name])
    chosen = list(dict.fromkeys(names))
    for i, a in enumerate(chosen):
        for b in chosen[i + 1 :]:
            why = _conflicts(registry[a]).get(b) or _conflicts(registry[b]).get(a)
            if why is not None:
                raise GraphkitError(
                    f"the ONNX passes {a} and {b} cannot be combined ({why}); pick one"
                )
    params = params or {}
    for name in params:
        if name not in chosen:
            raise GraphkitError(f"parameters for the ONNX pass {name!r}, which is not run")
    for p in passes:
        given = dict(params.get(p.NAME, {}))
        takes = dict(getattr(p, "PARAMS", {}))
        for key in given:
            if key not in takes:
                expected = ", ".join(takes) or "none"
                raise GraphkitError(
                    f"the ONNX pass {p.NAME} has no parameter {key!r} (it takes: {expected})"
                )
        check = getattr(p, "check_params", None)
        if check is not None:
            check(**given)
    return sorted(passes, key=_phase)  # stable: the given order within a phase


def run_passes(
    model,
    names: Sequence[str],
    registry: Mapping[str, OnnxPass] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[PassResult]:
    """Run the passes called ``names`` on ``model`` in place, in order (deploy passes last),
    each with its ``params[name]``; then clean up once.

    The cleanup (dead nodes removed, nodes sorted topologically, subgraphs included) runs once
    after the last pass, and only if a pass changed something: a model that no pass matched is
    left exactly as it was. A deploy pass reads onnx's shape inference, which needs nodes in
    order: it gets a cleaned graph too when a pass before it changed something.
    """
    from graphkit.onnx_passes import graph

    passes = resolve_passes(names, registry, params)
    params = params or {}
    results, changed = [], False
    for p in passes:
        if changed and _phase(p) > 0:
            graph.cleanup(model.graph)
            changed = False
        results.append(p.apply(model, **params.get(p.NAME, {})))
        changed = changed or bool(results[-1].applied)
    if changed:
        graph.cleanup(model.graph)
    return results
