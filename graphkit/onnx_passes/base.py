"""What an ONNX pass is, what it reports, and the runner that applies passes then cleans up once.

A pass is a module (or any object) with:

- ``NAME``: the registered name, used by ``graphkit export --pass NAME``;
- ``SUMMARY``: one line, listed by ``graphkit rules``;
- ``CONFLICTS``: the passes it cannot be combined with, as ``{name: why}`` (or just names);
  a conflict declared on either side is enough;
- ``apply(model) -> PassResult``: edit the ``onnx.ModelProto`` in place and say what it did
  and, for every candidate it left alone, why. It leaves dead nodes and node order to the
  runner: ``run_passes`` removes dead nodes and sorts once, after the last pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from graphkit.errors import GraphkitError


@dataclass
class PassResult:
    name: str
    applied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "node: why it did not match"
    notes: list[str] = field(default_factory=list)  # what a user must know about the result


class OnnxPass(Protocol):
    NAME: str
    SUMMARY: str
    CONFLICTS: Mapping[str, str] | Iterable[str]

    def apply(self, model: Any) -> PassResult: ...


def _conflicts(p: OnnxPass) -> dict[str, str]:
    declared = getattr(p, "CONFLICTS", ())
    if isinstance(declared, Mapping):
        return dict(declared)
    return {name: "declared as conflicting" for name in declared}


def resolve_passes(
    names: Sequence[str], registry: Mapping[str, OnnxPass] | None = None
) -> list[OnnxPass]:
    """The passes called ``names``, in that order; GraphkitError for an unknown or conflicting name.

    Cheap (nothing is run, onnx is not imported): call it before any slow work.
    """
    if registry is None:
        from graphkit.onnx_passes import PASSES as registry
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
    return passes


def run_passes(
    model, names: Sequence[str], registry: Mapping[str, OnnxPass] | None = None
) -> list[PassResult]:
    """Run the passes called ``names`` on ``model`` in place, in order; then clean up once.

    The cleanup (dead nodes removed, nodes sorted topologically, subgraphs included) runs once
    after the last pass, and only if a pass changed something: a model that no pass matched is
    left exactly as it was.
    """
    from graphkit.onnx_passes import graph

    passes = resolve_passes(names, registry)
    results = [p.apply(model) for p in passes]
    if any(r.applied for r in results):
        graph.cleanup(model.graph)
    return results
