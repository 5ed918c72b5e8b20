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


class Swap(Replacement):
    """Put one new layer in the old one's place, called exactly as the old one was.

    Every argument of the original call is passed on (``reverse=True``, ``mask=``,
    ``training=``...): a Functional rebuild calls the replacement with the node's recorded
    arguments, so a layer called several ways (``ReversibleEmbedding(x)`` and
    ``ReversibleEmbedding(h, reverse=True)``) keeps each call. One Swap serves every call
    site, so the new layer (its variables, a weight tie) is shared as the old one was.
    """

    def __init__(self, layer):
        self.layers = [layer]

    def __call__(self, *args, **kwargs):
        return self.layers[0](*args, **kwargs)


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


class RewriteContext:
    """What a rule's ``rewrite`` may use besides the graph: layer names, and notes for the user.

    ``taken`` holds every name in the model being rewritten: its layers' and the operations'
    Keras put in its graph (mask ops such as ``not_equal_1``). The engine gives each
    ``rewrite`` a fork; names reserved or released in it reach the model's context only when
    the rewrite returns a Match, so a rule that refuses late leaves no trace.
    """

    def __init__(self, taken: set[str] | None = None):
        self.taken: set[str] = set(taken or ())
        self.notes: list[str] = []

    def unique_name(self, base: str) -> str:
        """``base``, or ``base_1``, ``base_2``... whichever is free; reserved from now on."""
        name, i = base, 1
        while name in self.taken:
            name = f"{base}_{i}"
            i += 1
        self.taken.add(name)
        return name

    def reserve(self, names) -> None:
        """``names`` are taken: Keras gave them to operations of the rebuilt model."""
        self.taken.update(names)

    def release(self, name: str) -> None:
        """``name`` is free again: the layer that held it is being replaced."""
        self.taken.discard(name)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def fork(self) -> RewriteContext:
        return RewriteContext(self.taken)

    def commit(self, fork: RewriteContext) -> None:
        self.taken.clear()
        self.taken.update(fork.taken)


class Rule(Protocol):
    """One rewrite rule: what it anchors on, a cheap check with a reason, the rewrite.

    Registered in ``graphkit.rules.RULES`` (one line); the engine, inspect, input synthesis
    and bench loop over that registry and never name a layer class themselves.
    """

    name: str
    summary: str  # one line, for ``graphkit rules``
    # the --to targets this rule serves, or ("*",) for every target and for export
    targets: tuple[str, ...]
    # "repair" | "normalise" | "convert": phases run in this order, each on the previous result
    phase: str
    # the form the anchor belongs to ("embedding", "onehot-dense") for convert rules, else None
    source: str | None
    # what the anchor is called in messages ("Embedding", "OneHot + Dense group")
    anchor_label: str
    # a refusal of an optional rule keeps the layer as it is and never fails a conversion
    optional: bool
    # how ``inspect`` marks an anchor: "label", "role" (the JSON value), "yes", "becomes",
    # "no"; optional "group" (the summary's name for it) and "member_role" (layers replaced
    # with the anchor), e.g. {"label": "Embedding", "role": "embedding", "yes": "convertible",
    # "becomes": "-> OneHot + Dense", "no": "not convertible"}
    inspect: dict[str, str]
    # rewrites that are exact on every input (tests compare bit for bit; else within ulps)
    exact: bool

    def anchors(self, layer: Any) -> bool:
        """Does this layer start the rule's pattern? (A class test: no graph, no weights.)"""

    def check(self, layer: Any, graph: GraphView) -> Refusal | None:
        """Why the rule cannot apply here, or None. Cheap: builds no layer, copies no table."""

    def rewrite(self, layer: Any, graph: GraphView, ctx: RewriteContext) -> Match | Refusal:
        """The replacement layers, weights set; called only after ``check`` passed."""

    def index_range(self, layer: Any) -> tuple[int, bool] | None:
        """(vocabulary, mask_zero) of the integer indices the anchor reads, if it reads some."""

    def covers(self, layer: Any, graph: GraphView) -> list[str]:
        """Names of the other layers a rewrite would replace with the anchor (after ``check``)."""


PHASES = ("repair", "normalise", "convert")


def applies_to(rule, target: str) -> bool:
    return "*" in rule.targets or target in rule.targets


def all_finite(variable, chunk_bytes: int = 64 << 20) -> bool:
    """Does a (possibly multi-GB) table hold no inf or NaN? Reduced in row slices, so no
    boolean mask of the table's size is ever built."""
    import keras
    import numpy as np

    shape = tuple(variable.shape)
    value = variable.value if hasattr(variable, "value") else variable
    if len(shape) < 1 or shape[0] == 0:
        return bool(np.all(np.isfinite(keras.ops.convert_to_numpy(value))))
    per_row = max(1, int(np.prod(shape[1:])) * 4)
    step = max(1, chunk_bytes // per_row)
    for begin in range(0, shape[0], step):
        if not bool(keras.ops.all(keras.ops.isfinite(value[begin : begin + step]))):
            return False
    return True


def lora_adapters_zero(layer) -> bool:
    """Do ``layer``'s LoRA adapters add nothing (A or B all zero)? So is every model Keras
    loads from a file: it saves the merged table and loads the adapters as zeros. Its
    table (``embeddings``) is then the base table, and the rewrite drops the adapters."""
    import keras

    for name in ("lora_embeddings_a", "lora_embeddings_b", "lora_kernel_a", "lora_kernel_b"):
        adapter = getattr(layer, name, None)
        if adapter is not None and not bool(keras.ops.any(keras.ops.not_equal(adapter, 0))):
            return True
    return False


def note_lora_dropped(layer, ctx) -> None:
    """Say that ``layer``'s LoRA (adapters all zero, see ``lora_adapters_zero``) is left out
    of its rewrite."""
    if getattr(layer, "lora_enabled", False) and ctx is not None:
        ctx.note(
            f"{layer.name!r}: its LoRA (rank {getattr(layer, 'lora_rank', '?')}) is left out: "
            "its adapters were zero (Keras merges them into the table when it saves); "
            "enable_lora again to fine-tune"
        )


def table_refusal(layer, label: str) -> Refusal | None:
    """Why ``layer``'s table cannot be looked up with a one-hot MatMul (None if it can)."""
    if not layer.built:
        return Refusal(f"the {label} is not built (it holds no table yet)")
    if getattr(layer, "quantization_mode", None):
        return Refusal(
            f"the {label} is quantized ({layer.quantization_mode}); graphkit converts float "
            "tables only"
        )
    if getattr(layer, "lora_enabled", False) and not lora_adapters_zero(layer):
        return Refusal(
            f"the {label} has LoRA adapters not merged into its table; save the model and "
            "convert the file (Keras merges LoRA into the table when it saves, and a loaded "
            "model's adapters are zero)"
        )
    if not all_finite(layer.embeddings):  # reduced in slices where the table lives
        return Refusal(
            "the table holds inf or NaN: a one-hot MatMul would turn them into NaN everywhere"
        )
    return None
