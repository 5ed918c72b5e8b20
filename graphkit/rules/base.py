"""What a rewrite rule is: a pattern (anchor layer), a check that states why it refuses, a replacement."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from graphkit.graph import GraphView


class Replacement:
    """What the engine puts in place of one original layer.

    ``layers`` is what a Sequential model lists instead of the original layer;
    calling the replacement is what a Functional model does at each call site.
    One replacement object serves every call site of a shared layer, so the new
    layers (and their weights) stay shared.
    """

    layers: list = []

    def __call__(self, *args, **kwargs):
        raise NotImplementedError


class Chain(Replacement):
    """Call ``layers`` one after another on the first argument (call kwargs dropped)."""

    def __init__(self, layers: list):
        self.layers = list(layers)

    def __call__(self, inputs, *args, **kwargs):
        out = inputs
        for layer in self.layers:
            out = layer(out)
        return out


class Bypass(Replacement):
    """Remove the layer: its output is its input (the consumer's replacement handles the rest)."""

    layers: list = []

    def __call__(self, inputs, *args, **kwargs):
        return inputs


@dataclass
class Match:
    """A rule applies: original layers (by id) -> replacement, plus what to tell the user."""

    replacements: dict[int, Replacement]
    new_layer_names: list[str]
    notes: list[str] = field(default_factory=list)
    # names of the original layers the match removes (the anchor first)
    replaced_names: list[str] = field(default_factory=list)
    # what the report calls it: "converted" (the target's own rules) or "repaired"
    status: str = "converted"


@dataclass
class Refusal:
    """A rule's anchor was found but the rule does not apply; ``reason`` says why."""

    reason: str
    # "refused": the user asked for this conversion and we cannot do it (exit 2 unless --partial).
    # "kept": the structure legitimately stays as it is (e.g. a OneHot with other consumers).
    severity: str = "refused"


class Rule(Protocol):
    name: str
    target: str  # the --to value this rule serves

    def anchors(self, layer: Any) -> bool:
        """Does this layer start the rule's pattern (class test only)?"""

    def match(self, layer: Any, graph: GraphView) -> Match | Refusal:
        """Check the pattern around ``layer`` in ``graph`` and build the replacement."""
