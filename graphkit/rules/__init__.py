"""The rewrite rules, one module each, and the registry that maps a ``--to`` target to its rules."""

from __future__ import annotations

from graphkit.rules.base import Bypass, Chain, Match, Refusal, Replacement, Rule
from graphkit.rules.embedding_to_onehot import EmbeddingToOneHot
from graphkit.rules.onehot_to_embedding import OneHotToEmbedding
from graphkit.rules.repair_time_distributed import RepairTimeDistributed

RULES = {
    "onehot-dense": [EmbeddingToOneHot],
    "embedding": [OneHotToEmbedding],
}
TARGETS = tuple(RULES)
# Repairs run first, before any target's rules and before export: they make the model
# compute what its eager call computes in every traced form (see repair_time_distributed).
REPAIRS = [RepairTimeDistributed]

__all__ = [
    "REPAIRS",
    "RULES",
    "TARGETS",
    "Bypass",
    "Chain",
    "EmbeddingToOneHot",
    "Match",
    "OneHotToEmbedding",
    "Refusal",
    "RepairTimeDistributed",
    "Replacement",
    "Rule",
]
