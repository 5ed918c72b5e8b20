"""What an ONNX pass is and what it reports: the facts below every pass module.

The runner that resolves names and applies passes is ``runner`` (it imports the passes, which
import this module: kept apart so that no pass imports the package that imports it).

A pass is a module (or any object) with:

- ``NAME``: the registered name, used by ``graphkit export --pass NAME``;
- ``SUMMARY``: one line, listed by ``graphkit rules``;
- ``CONFLICTS``: the passes it cannot be combined with, as ``{name: why}`` (or just names);
  a conflict declared on either side is enough;
- ``apply(model, **params) -> PassResult``: edit the ``onnx.ModelProto`` in place and say
  what it did and, for every candidate it left alone, why. It leaves dead nodes and node order
  to the runner: ``runner.run_passes`` removes dead nodes and sorts once, after the last pass.

and, optionally:

- ``PARAMS``: ``{name: meaning}`` of the keyword parameters ``apply`` takes (none if absent);
  ``run_passes(..., params={pass name: {param: value}})`` passes them;
- ``check_params(**params)``: cheap validation (raises GraphkitError), run by
  ``resolve_passes`` before any slow work, with ``{}`` when none were given;
- ``PHASE``: ``"rewrite"`` (the default) or ``"deploy"``. Deploy passes fit the finished graph
  to a runtime (index types, static shapes): they run after every rewrite pass, whatever the
  order the names were given in, so that what a rewrite adds is covered too. They read
  onnx's shape inference, so the runner cleans and sorts the graph before each one that
  follows a change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


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

    def apply(self, model: Any, **params: Any) -> PassResult: ...


PHASES = ("rewrite", "deploy")  # the order passes run in, whatever the order of their names
