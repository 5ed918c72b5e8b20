"""graphkit's own Keras layers, registered as ``graphkit>OneHot``, ``graphkit>TimeDistributed``,
``graphkit>TokenSum``, ``graphkit>OneHotEmbedding`` and ``graphkit>OneHotReversibleEmbedding``."""

from __future__ import annotations

from graphkit.layers.one_hot import OneHot
from graphkit.layers.onehot_embedding import OneHotEmbedding, OneHotReversibleEmbedding
from graphkit.layers.time_distributed import TimeDistributed
from graphkit.layers.token_sum import TokenSum

__all__ = ["OneHot", "OneHotEmbedding", "OneHotReversibleEmbedding", "TimeDistributed", "TokenSum"]

from graphkit import swaps as _swaps  # noqa: E402  (the loader of swapped custom layers)

_swaps.register()
