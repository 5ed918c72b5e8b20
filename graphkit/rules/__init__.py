"""The rewrite rules, one module each, and the registry that everything else loops over.

Adding a rule: write ``graphkit/rules/<name>.py`` (a class with ``anchors``, ``check``,
``rewrite``, ``index_range`` and the declarations of ``graphkit.rules.base.Rule``), add one
line to ``RULES`` below, and a test beside the others in ``tests/rules/``. The engine,
``convert``, ``export`` (repairs), ``inspect``, input synthesis, ``bench`` and
``graphkit rules`` read it from here. Importing this package imports no TensorFlow.
"""

from __future__ import annotations

from graphkit.rules.base import (
    PHASES,
    Bypass,
    Chain,
    Match,
    Refusal,
    Replacement,
    RewriteContext,
    Rule,
    Swap,
    applies_to,
)
from graphkit.rules.categoryencoding_to_onehot import CategoryEncodingToOneHot
from graphkit.rules.count_to_embedding import CountToEmbedding
from graphkit.rules.embedding_to_onehot import EmbeddingToOneHot
from graphkit.rules.lambda_to_onehot import LambdaToOneHot
from graphkit.rules.lookup_to_onehot import LookupToOneHot
from graphkit.rules.onehot_embedding_to_embedding import OneHotEmbeddingToEmbedding
from graphkit.rules.onehot_reversible_to_embedding import OneHotReversibleToEmbedding
from graphkit.rules.onehot_to_embedding import OneHotToEmbedding
from graphkit.rules.repair_time_distributed import RepairTimeDistributed
from graphkit.rules.reversible_embedding_to_onehot import ReversibleEmbeddingToOneHot
from graphkit.rules.unwrap_time_distributed_embedding import UnwrapTimeDistributedEmbedding

# The registry, one line per rule. Order matters only among rules of one phase that anchor
# on the same layer: the engine tries them in this order until one matches.
RULES: list[Rule] = [
    RepairTimeDistributed(),
    LambdaToOneHot(),
    CountToEmbedding(),  # before the rules that keep count encodings: one finding each
    CategoryEncodingToOneHot(),
    LookupToOneHot(),
    UnwrapTimeDistributedEmbedding(),  # TD(Embedding) -> Embedding, then converted
    ReversibleEmbeddingToOneHot(),  # before embedding_to_onehot, which refuses subclasses
    EmbeddingToOneHot(),
    OneHotToEmbedding(),
    OneHotEmbeddingToEmbedding(),
    OneHotReversibleToEmbedding(),
]

TARGETS = tuple(dict.fromkeys(t for rule in RULES if rule.phase == "convert" for t in rule.targets))


def phases(target: str) -> list[list[Rule]]:
    """The rules that ``convert --to target`` runs, phase by phase (repair, normalise, convert)."""
    return [
        [rule for rule in RULES if rule.phase == phase and applies_to(rule, target)]
        for phase in PHASES
        if any(rule.phase == phase and applies_to(rule, target) for rule in RULES)
    ]


def repairs() -> list[Rule]:
    """The repair rules, which export runs too (they make a model right when traced)."""
    return [rule for rule in RULES if rule.phase == "repair"]


def index_range(layer) -> tuple[int, bool] | None:
    """(vocabulary, mask_zero) of the indices ``layer`` reads, from the first rule that knows."""
    for rule in RULES:
        found = rule.index_range(layer)
        if found is not None:
            return found
    return None


def lookup_values(layer) -> tuple | None:
    """The vocabulary of raw values a lookup layer maps to indices (any other value is
    valid too: it goes to the out-of-vocabulary index), from the first rule that declares
    ``lookup_values``; None for layers that read no such values."""
    for rule in RULES:
        declared = getattr(rule, "lookup_values", None)
        found = declared(layer) if declared is not None else None
        if found is not None:
            return found
    return None


def anchored_by_any(layer) -> bool:
    return any(rule.anchors(layer) for rule in RULES)


def variant_of(model) -> str | None:
    """The form a model is in ("embedding", "onehot-dense"): the source of the convert rule
    whose anchor it holds. A model holding anchors of several is in the form of the last
    in registry order (a partly converted model is counted as converted)."""
    from graphkit import _keras_api

    layers = list(_keras_api.flatten_layers(model))
    found = None
    for rule in RULES:
        if rule.phase == "convert" and rule.source and any(rule.anchors(x) for x in layers):
            found = rule.source
    return found


def forms() -> list[str]:
    """The model forms the convert rules go between, in registry order."""
    return list(dict.fromkeys(r.source for r in RULES if r.phase == "convert" and r.source))


def target_from(source: str | None) -> str | None:
    """The target a model in form ``source`` converts to (``embedding`` -> ``onehot-dense``)."""
    for rule in RULES:
        if rule.phase == "convert" and source is not None and rule.source == source:
            return rule.targets[0]
    return None


def describe_rules() -> list[dict[str, str]]:
    """Name, target and summary of every rule, for ``graphkit rules``."""
    return [
        {
            "name": rule.name,
            "targets": list(rule.targets),
            "target": (
                ("all (and export)" if rule.phase == "repair" else "all")
                if "*" in rule.targets
                else ", ".join(rule.targets)
            ),
            "phase": rule.phase,
            "summary": rule.summary,
        }
        for rule in RULES
    ]


class Listing:
    """What ``graphkit rules`` prints: every rule and every ONNX pass (no TensorFlow import)."""

    def __init__(self):
        from graphkit.onnx_passes import describe_passes
        from graphkit.onnx_targets import describe_targets

        self.rules = describe_rules()
        self.passes = [{"name": p["name"], "summary": p["summary"]} for p in describe_passes()]
        self.targets = describe_targets()

    def to_dict(self) -> dict:
        return {"rules": self.rules, "passes": self.passes, "targets": self.targets}

    def format(self) -> str:
        order = ", ".join(PHASES)
        lines = [f"rules (convert --to TARGET runs the phases in order: {order}):"]
        width = max(len(r["name"]) for r in self.rules)
        phase_width = max(len(p) for p in PHASES)
        lines += [
            f"  {r['name']:<{width}}  {r['phase']:<{phase_width}}  {r['target']}: {r['summary']}"
            for r in self.rules
        ]
        lines.append("passes (export --pass NAME):")
        width = max((len(p["name"]) for p in self.passes), default=0)
        lines += [f"  {p['name']:<{width}}  {p['summary']}" for p in self.passes]
        lines.append("targets (export --target NAME --fixed-shape NAME=DIMS; passes in order):")
        width = max((len(t["name"]) for t in self.targets), default=0)
        lines += [
            f"  {t['name']:<{width}}  {t['summary']} [{', '.join(t['passes'])}]"
            for t in self.targets
        ]
        return "\n".join(lines)


def listing() -> Listing:
    return Listing()


__all__ = [
    "PHASES",
    "RULES",
    "TARGETS",
    "Bypass",
    "CategoryEncodingToOneHot",
    "Chain",
    "CountToEmbedding",
    "EmbeddingToOneHot",
    "LambdaToOneHot",
    "LookupToOneHot",
    "Match",
    "OneHotEmbeddingToEmbedding",
    "OneHotReversibleToEmbedding",
    "OneHotToEmbedding",
    "Refusal",
    "RepairTimeDistributed",
    "Replacement",
    "ReversibleEmbeddingToOneHot",
    "RewriteContext",
    "Rule",
    "Swap",
    "UnwrapTimeDistributedEmbedding",
    "anchored_by_any",
    "describe_rules",
    "index_range",
    "listing",
    "lookup_values",
    "phases",
    "repairs",
    "forms",
    "target_from",
    "variant_of",
]
