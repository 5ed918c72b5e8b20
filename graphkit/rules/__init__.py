"""The rewrite rules, one module each, and the registry that maps a ``--to`` target to its rules."""

from __future__ import annotations

from graphkit.rules.base import Bypass, Chain, Match, Refusal, Replacement, Rule
from graphkit.rules.embedding_to_onehot import EmbeddingToOneHot
from graphkit.rules.onehot_to_embedding import OneHotToEmbedding

RULES = {
    "onehot-dense": [EmbeddingToOneHot],
    "embedding": [OneHotToEmbedding],
}
TARGETS = tuple(RULES)

__all__ = [
    "RULES",
    "TARGETS",
    "Bypass",
    "Chain",
    "EmbeddingToOneHot",
    "Match",
    "OneHotToEmbedding",
    "Refusal",
    "Replacement",
    "Rule",
]
